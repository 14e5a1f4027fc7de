"""The split remembered per dataset folder, so that adding files does not move the old ones.

The first scan of a folder splits it by groups.split_of_groups (a pure function of the files: the same on
every machine). What it decided is kept beside the scan cache, per image content and validation share. A
later scan of the same folder keeps every remembered image on its side; a split unit (copies kept together)
of new images only takes the pure rule's side, and one that holds remembered images takes their side, the
majority's where a new copy joined units that were on different sides (so the smaller one moves: the only
way an old file changes side). Forgetting the memory (`scan --forget-split`, or deleting the cache) gives the
pure rule back. Without the cache (use_cache=False) the split is the pure rule alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, files

SIDES = ("train", "val")


def memory_file(root: str | Path, val_fraction: float) -> Path:
    key = hashlib.sha1(f"{Path(root).resolve()}|{val_fraction:.6f}".encode()).hexdigest()[:16]
    return config.CACHE_DIR / f"split-{key}.json"


def _load(path: Path) -> dict[str, str]:
    try:
        book = json.loads(path.read_text())["sides"]
        return {h: s for h, s in book.items() if s in SIDES}
    except Exception:  # none yet, or unreadable: the pure rule decides
        return {}


def forget(root: str | Path, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> bool:
    """Drop a folder's remembered split (the next scan splits by the pure rule); whether there was one."""
    path = memory_file(root, val_fraction)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def remembered_split(table: pd.DataFrame, pure: pd.Series, root: str | Path, val_fraction: float) -> pd.Series:
    """The split of a scan table (columns hash, split_unit, error) given its pure-rule split: remembered sides
    kept, as the module says; records the sides of this scan's images in the memory."""
    path = memory_file(root, val_fraction)
    book = _load(path)
    ok = table["error"].isna() & table["split_unit"].notna()
    split = pure.copy()
    if ok.any():
        rows = pd.DataFrame({"unit": table.loc[ok, "split_unit"], "hash": table.loc[ok, "hash"]})
        rows = rows.drop_duplicates("hash")  # an exact copy is one image: one vote
        known = rows["hash"].map(book)
        votes = pd.crosstab(rows["unit"], known).reindex(columns=list(SIDES), fill_value=0)
        side = pd.Series(np.where(votes["val"] > votes["train"], "val", "train"), index=votes.index)
        side[votes["val"] == votes["train"]] = None  # no memory, or a tie: the pure rule decides
        decided = table.loc[ok, "split_unit"].map(side)
        split[ok] = decided.where(decided.notna(), pure[ok])
        now = dict(zip(table.loc[ok, "hash"], split[ok]))
        if any(book.get(h) != s for h, s in now.items()):
            book = {**_load(path), **book, **now}  # another scan may have written meanwhile: keep its images
            try:
                config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
                files.write_bytes_atomic(path, json.dumps({"val_fraction": val_fraction, "sides": book}).encode())
            except OSError:  # a read-only cache: this scan's split stands, unremembered
                pass
    return split
