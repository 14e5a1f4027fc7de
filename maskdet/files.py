"""Writing a file so that a reader sees the old file or the new one, never half of one: written aside
under a hidden name beside it, then renamed into place (a rename within a folder is atomic)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def written_aside(path: str | Path, fsync: bool = False):
    """Yield the path to write instead of `path`; once the block ends without an error it replaces
    `path`, else it is removed. The aside name keeps the suffix (Keras and numpy go by it). `fsync`: on
    disk before the rename, for records a crash must not lose (a cache can be rebuilt)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with written_aside(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, obj) -> None:
    """A record (status, parameters, card): indented, anything unknown as its str, synced to disk."""
    with written_aside(path, fsync=True) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, default=str))


def save_pickle_atomic(path: str | Path, obj) -> None:
    with written_aside(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    with written_aside(path) as tmp:
        np.save(tmp, array)


def copy_atomic(src: str | Path, dest: str | Path) -> None:
    """Copy src over dest, synced to disk: dest is at every moment the old file or the new one."""
    with written_aside(dest, fsync=True) as tmp:
        shutil.copyfile(src, tmp)
