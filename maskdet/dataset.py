"""A dataset folder -> one pandas table: a row per file of its class folders, read once and cached.

A dataset is any folder with one sub-folder per class (names matched loosely, see
config.CLASS_ALIASES), possibly nested (Kaggle's download) or split into
Train/Validation/Test folders: every folder whose name is a class alias counts.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, file_readers, files, groups, look_alikes, photo_match as pm, split_memory
from .images import SKIP_REASONS, ImageError, read_image_file, sharpness

SCAN_CACHE_VERSION = 5  # 4: keypoints for verified near-duplicate groups (maskdet.groups); 5: + thumbnails


class DatasetError(ValueError):
    """A folder that cannot be used as a dataset; the message says why, for a user."""


# ---------------------------------------------------------------- folders


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def class_of_folder(name: str) -> str | None:
    """Folder name -> class name, or None when it names no class."""
    key = _norm(name)
    for cls, aliases in config.CLASS_ALIASES.items():
        if key == _norm(cls) or key in aliases:
            return cls
    return None


def find_class_folders(root: str | Path) -> dict[str, list[Path]]:
    """Every folder under root whose name is a class alias, by class (nested layouts too)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{root}: the folder does not exist")
    if not root.is_dir():
        raise DatasetError(f"{root}: is a file, not a folder")
    found: dict[str, list[Path]] = {c: [] for c in config.CLASS_NAMES}
    seen_dirs = []
    for dirpath, dirnames, _ in os.walk(root, followlinks=False):  # no symlink loops
        dirnames.sort()
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= 5:
            dirnames[:] = []
            continue
        for d in list(dirnames):
            cls = class_of_folder(d)
            if cls:
                found[cls].append(Path(dirpath) / d)
                dirnames.remove(d)  # a class folder's own sub-folders belong to it
            else:
                seen_dirs.append(d)
    if not any(found.values()):
        names = ", ".join(sorted(set(seen_dirs))[:8]) or "none"
        raise DatasetError(
            f"{root}: no class folders found (sub-folders seen: {names}). Expected one folder per class, "
            f"named like {' / '.join(config.CLASS_NAMES)}."
        )
    return found


def list_files(root: str | Path) -> pd.DataFrame:
    """Every file in the class folders of a dataset folder, whatever its name: path, label (sorted,
    stable). Which files are images is told by their content when they are scanned, never by their
    names: scrapers leave names like `a.png"`, `b.jpg_1088Wx1632H` or none at all."""
    rows = []
    for cls, dirs in find_class_folders(root).items():
        for d in dirs:
            for dirpath, dirnames, filenames in os.walk(d, followlinks=False):
                dirnames.sort()
                for f in sorted(filenames):
                    rows.append((str(Path(dirpath) / f), cls))
    table = pd.DataFrame(rows, columns=["path", "label"])
    if table.empty:
        raise DatasetError(f"{root}: the class folders are empty (no image files)")
    return table.drop_duplicates("path").reset_index(drop=True)


# ---------------------------------------------------------------- scanning


def _scan_file(path: str) -> dict:
    """One file of the class folders: identified by its header, and only an image is read whole. A file
    not used says why in `skipped` (one of SKIP_REASONS) and `error`."""
    row = {
        "width": np.nan,
        "height": np.nan,
        "format": None,
        "mode": None,
        "sharpness": np.nan,
        "hash": None,
        "error": None,
        "signature": None,
        "skipped": None,
        "keypoints": None,
    }
    try:
        if Path(path).name.startswith("."):
            raise ImageError("hidden file (its name starts with a dot); not read", "hidden file")
        data, row["format"], row["mode"], img = read_image_file(path, decode=True)
        row["hash"] = hashlib.sha1(data).hexdigest()
        row["width"], row["height"] = img.size
        row["sharpness"] = sharpness(img)
        row["signature"] = look_alikes.signature(img)
        row["keypoints"] = pm.keypoints(img)
    except ImageError as exc:
        row["error"] = str(exc).replace("image: ", "", 1)
        row["skipped"] = exc.reason
    except FileNotFoundError:
        row["error"], row["skipped"] = "the file is gone (or a link to nothing)", "unreadable"
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        row["error"] = f"unreadable: {exc}"
        row["skipped"] = "unreadable"
    return row


def _cache_file(root: Path) -> Path:
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return config.CACHE_DIR / f"scan-v{SCAN_CACHE_VERSION}-{key}.pkl"


def scan(
    root: str | Path, val_fraction: float = config.DEFAULT_VAL_FRACTION, use_cache: bool = True, progress=None
) -> pd.DataFrame:
    """A dataset folder -> one table, a row per file in its class folders (images told by content).

    Columns: path, label, width, height, bytes, format, mode, sharpness, hash, error, skipped,
    group (near-duplicate group: copies of one photo, named by its smallest content hash), group_size,
    split_unit (groups the split keeps together), split ("train"/"val"; None for files not used; with the
    cache, remembered per folder so that added files do not move old ones: maskdet.split_memory).
    Files not used (not an image, empty, unreadable, too small or large, hidden) stay in the table
    with `skipped` (the reason, one of SKIP_REASONS) and `error` (what exactly) set; never fatal.
    `progress(done, total, what)` is called while files are read and while look-alike pairs are checked.
    Per-file results are cached by path, size and modification time, so a rescan reads only new or changed
    files; groups (maskdet.groups) are cached by the files' contents.
    """
    root = Path(root).expanduser()
    table = list_files(root)
    stats = [_size_and_time(p) for p in table["path"]]
    table["bytes"] = [s[0] for s in stats]
    table["mtime"] = [s[1] for s in stats]
    # The caches name files from the resolved root, so a folder given as `../shared/x`, `/work/shared/x` or
    # through a link finds what any of the others read (else a CLI run after the app re-read every image).
    given, resolved_root = str(root), str(root.resolve())
    names = table["path"].map(lambda p: resolved_root + p[len(given) :] if p.startswith(given) else os.path.realpath(p))
    keys = list(zip(names, table["bytes"], table["mtime"]))

    cache_path = _cache_file(root)
    cached = {}
    if use_cache and cache_path.exists():
        try:
            old = pd.read_pickle(cache_path)
            cached = {(r.path, r.bytes, r.mtime): r._asdict() for r in old.itertuples(index=False)}
        except Exception:  # a stale or torn cache is only a cache
            cached = {}
    todo = [i for i, k in enumerate(keys) if k not in cached]
    if todo:
        pm.prepare()  # OpenCV loaded once, here, before the reading threads use it
    rows = file_readers.read_files(
        table["path"].iloc[todo].tolist(), _scan_file, progress and (lambda d, t: progress(d, t, "reading images"))
    )
    results = dict(zip(todo, rows))
    cols = ["width", "height", "format", "mode", "sharpness", "hash", "error", "skipped", "signature"]
    new_keypoints = {row["hash"]: row["keypoints"] for row in results.values() if row.get("keypoints") is not None}
    records = [{c: (results.get(i) or cached[k]).get(c) for c in cols} for i, k in enumerate(keys)]
    table = pd.concat([table, pd.DataFrame(records)], axis=1)
    if use_cache:
        config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        files.save_pickle_atomic(cache_path, table.assign(path=names))
    if progress:
        progress(0, 1, "checking look-alike pairs")
    table = groups.cached_groups(
        table,
        names,
        _cache_file(root).with_name(_cache_file(root).name.replace("scan-", f"keypoints{pm.KEYPOINTS_VERSION}-")),
        new_keypoints,
        use_cache,
        progress and (lambda d, t: progress(d, t, "checking look-alike pairs")),
    )
    table["split"] = groups.split_of_groups(table["split_unit"], val_fraction)
    table.loc[table["error"].notna(), "split"] = None
    if use_cache:  # the old files keep their side when files are added (maskdet.split_memory)
        table["split"] = split_memory.remembered_split(table, table["split"], root, val_fraction)
    return table.drop(columns=["mtime"])


def _size_and_time(path: str) -> tuple[int, int]:
    """Size and modification time of a file; (0, -1) for one that cannot be stat'ed (a broken link)."""
    try:
        s = os.stat(path)
    except OSError:
        return 0, -1
    return s.st_size, s.st_mtime_ns


def file_counts(table: pd.DataFrame) -> dict:
    """ "N of M": every file of the class folders (`files`), the images used (`readable`) and the
    files not used by reason (`skipped`, most first)."""
    reasons = table.reindex(columns=["skipped"]).loc[table["error"].notna(), "skipped"].fillna("unreadable")
    counts = reasons.value_counts()
    order = sorted(counts.index, key=lambda r: (-counts[r], SKIP_REASONS.index(r) if r in SKIP_REASONS else 99, r))
    return {
        "files": int(len(table)),
        "readable": int(table["error"].isna().sum()),
        "skipped": {str(r): int(counts[r]) for r in order},
    }


def fingerprint(table: pd.DataFrame, root: str | Path | None = None) -> str:
    """The images of a table as one hash (sha256, hex): each readable file's name and its content hash, in
    name order; names relative to `root` when given (then the same files give the same fingerprint in any
    folder, on any machine). Any image added, removed, renamed, moved to the other class or changed gives
    another. Model cards keep the fingerprint of the folder a model was trained on."""
    good = table[table["error"].isna()]
    names = good["path"].astype(str)
    if root is not None:
        prefix = str(Path(root).expanduser()).rstrip(os.sep) + os.sep  # scan's paths start with the root given
        names = names.map(
            lambda p: (p[len(prefix) :] if p.startswith(prefix) else os.path.relpath(p, prefix)).replace(os.sep, "/")
        )
    lines = sorted(n + "\t" + h for n, h in zip(names, good["hash"].astype(str)))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def usable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that can be trained on: readable, labelled."""
    return table[table["error"].isna()].reset_index(drop=True)


def check_trainable(table: pd.DataFrame) -> None:
    """Raise DatasetError saying why a table cannot be trained on, if it cannot."""
    good = usable(table)
    counts = good["label"].value_counts()
    missing = [c for c in config.CLASS_NAMES if counts.get(c, 0) == 0]
    if missing:
        raise DatasetError(
            f"cannot train: no readable images of class {', '.join(missing)} "
            f"(found {', '.join(f'{k}: {v}' for k, v in counts.items()) or 'none'})"
        )
    for split in ("train", "val"):
        part = good[good["split"] == split]["label"].value_counts()
        if any(part.get(c, 0) == 0 for c in config.CLASS_NAMES):
            raise DatasetError(
                f"cannot train: the {split} split lacks a class; add images "
                f"(each class needs at least a few distinct images)"
            )


def balanced_sample(table: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """About `limit` rows, half per class, keeping whole near-duplicate groups together."""
    good = usable(table)
    parts = []
    for cls in config.CLASS_NAMES:
        rows = good[good["label"] == cls]
        groups = rows["group"].drop_duplicates().sample(frac=1.0, random_state=seed)
        sizes = rows.groupby("group").size().reindex(groups)
        keep = groups[(sizes.cumsum() <= limit // 2).to_numpy()]
        parts.append(rows[rows["group"].isin(keep)])
    return pd.concat(parts).sort_values("path").reset_index(drop=True)


def labels_of(table: pd.DataFrame) -> np.ndarray:
    """1.0 for the positive class (with mask), 0.0 otherwise: what the sigmoid predicts."""
    return (table["label"] == config.POSITIVE_CLASS).to_numpy(np.float32)
