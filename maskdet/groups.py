"""Near-duplicate groups (copies of one photo, each link verified) and the split that keeps a group on one side.

A group is a photo and its copies: the same bytes, or the same picture re-encoded, resized, flipped,
rotated (up to about 40 degrees), shifted, zoomed or cropped, as augmentation makes them. Two steps:
candidates are each image's nearest look-alikes by a colour-layout signature, checked in two passes
(maskdet.look_alikes); each candidate pair is then verified by matching
ORB keypoints and fitting one similarity transform, with a second look at the aligned pixels for pairs a
few keypoints short (maskdet.photo_match). Groups are the connected components of verified pairs, with no
size cap.
"""

from __future__ import annotations

import hashlib
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from . import config, files, look_alikes as la, photo_match as pm
from .images import open_image

VERSION = 4  # of the grouping rule: part of every cache key here
_PARAMS = (
    f"{VERSION}|{la.NEIGHBOURS}|{la.MIN_SIMILARITY}|{la.WIDE_NEIGHBOURS}|{la.FIRST_PASS}|{la.GREY_WEIGHT}|{la.GREY_SIDE}|"
    f"{la.SECOND_PASS_SIMILARITY}|{pm.KEYPOINTS_VERSION}|{pm.FEATURE_SIDE}|{pm.N_FEATURES}|{pm.FAST_THRESHOLD}|"
    f"{pm.MIN_INLIERS}|{pm.SPLIT_INLIERS}|{pm.RANSAC_PX}|{pm.SCALE_RANGE}|{pm.ALIGN_FROM}|{pm.ALIGN_NCC}|"
    f"{pm.THUMB_SIDE}|{pm.ALIGN_OVERLAP}|{pm.ALIGN_STRETCH}|{pm.ALIGN_SPLIT_NCC}"
)


# ---------------------------------------------------------------- pairs and groups


class _Components:
    """Union-find over n items."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[a] = b


def _verdict_cache() -> tuple[dict, object]:
    path = config.CACHE_DIR / f"pair-verdicts-{hashlib.sha1(_PARAMS.encode()).hexdigest()[:12]}.pkl"
    try:
        with open(path, "rb") as f:
            return pickle.load(f), path
    except Exception:  # none yet, or torn: only a cache
        return {}, path


def group_images(
    hashes: list[str], signatures: np.ndarray, features_of, use_cache: bool = True, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    """(group, split unit) of each image, each named by the smallest content hash in it, for images given
    by content hash, signature and a `features_of(hash)` callable returning photo_match.keypoints(). Exact copies (same
    hash) always join; other pairs join a group with MIN_INLIERS, a split unit (groups linked by weaker
    evidence, kept on one side of the split) with SPLIT_INLIERS. Verdicts are cached by content pair, so a
    rescan after adding files verifies only the new pairs. `progress(done, total)` follows the verification."""
    hashes = np.asarray(hashes, dtype=object)
    unique, inverse = np.unique(hashes, return_inverse=True)  # exact copies: one image
    if len(unique) == 0:
        return hashes, hashes
    first = np.zeros(len(unique), np.int64)
    first[inverse[::-1]] = np.arange(len(hashes))[::-1]
    greys = la.grey_thumbnails([features_of(h)[4] for h in unique])
    pairs, later = la.first_pass_pairs(signatures[first], greys, unique)
    verdicts, cache_path = _verdict_cache() if use_cache else ({}, None)
    new = {}
    comps, units = _Components(len(unique)), _Components(len(unique))
    total = len(pairs) + len(later)  # the second pass checks fewer than `later`: the total shrinks then

    def check(chunk):
        return pm.inliers_many([(features_of(unique[i]), features_of(unique[j])) for i, j in chunk])

    def verify(pairs, done):
        for start in range(0, len(pairs), 512):
            # a pair already joined through others needs no verdict: the components are the same either way
            batch = [(i, j) for i, j in pairs[start : start + 512] if comps.find(i) != comps.find(j)]
            counts = {
                p: verdicts[(unique[p[0]], unique[p[1]])] for p in batch if (unique[p[0]], unique[p[1]]) in verdicts
            }
            fresh = [p for p in batch if p not in counts]
            chunks = [fresh[k : k + pm.CHUNK] for k in range(0, len(fresh), pm.CHUNK)]
            for chunk, found in zip(chunks, pool.map(check, chunks)):
                for (i, j), count in zip(chunk, found):
                    counts[(i, j)] = new[(unique[i], unique[j])] = count
            for i, j in batch:
                if counts[(i, j)] >= pm.MIN_INLIERS:
                    comps.union(i, j)
                if counts[(i, j)] >= pm.SPLIT_INLIERS:
                    units.union(i, j)
            if progress:
                progress(done + min(start + 512, len(pairs)), total)

    with ThreadPoolExecutor(max_workers=config.VERIFY_THREADS) as pool:
        verify(pairs, 0)
        # the second pass: the close look-alikes (la.SECOND_PASS_SIMILARITY) of the images the first found a copy of
        roots = np.array([comps.find(i) for i in range(len(unique))])
        copied = np.bincount(roots, minlength=len(unique))[roots] > 1
        later = later[copied[later[:, 0]] | copied[later[:, 1]]]
        total = len(pairs) + len(later)
        verify(later, len(pairs))
    if use_cache and new:
        verdicts.update(new)
        try:
            config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
            files.save_pickle_atomic(cache_path, verdicts)
        except OSError:
            pass

    def names(c):
        roots = np.array([c.find(i) for i in range(len(unique))])
        return pd.Series(unique).groupby(roots).transform("min").to_numpy()[inverse]

    return names(comps), names(units)


def cached_groups(
    table: pd.DataFrame, names: pd.Series, kp_path, new_keypoints: dict, use_cache: bool, progress=None
) -> pd.DataFrame:
    """group_images over a scan table's readable rows (columns hash, signature, error), remembered on disk by
    the files' names (`names`, from the resolved root) and contents; adds the columns group, split_unit and
    group_size. Keypoints live in a cache of their own at `kp_path` (bulky; read only when the groups must be
    worked out), `new_keypoints` (hash -> photo_match.keypoints) are those just computed."""
    ok = table["error"].isna().to_numpy()
    key = hashlib.sha1(_PARAMS.encode() + "|".join(names + ":" + table["hash"].fillna("-")).encode()).hexdigest()[:20]
    path = config.CACHE_DIR / f"groups-{key}.pkl"
    names = units = None
    if use_cache and path.exists():
        try:
            names, units = pd.read_pickle(path)
        except Exception:  # a torn or stale cache is only a cache
            names = None
    if names is None or len(names) != len(table):
        good = table[ok]
        stored = {}
        if use_cache and len(new_keypoints) < good["hash"].nunique():
            try:
                stored = pd.read_pickle(kp_path)
            except Exception:
                stored = {}
        known = {**stored, **new_keypoints}
        path_of = dict(zip(good["hash"], good["path"]))

        def keypoints_of(h):
            if h not in known:  # the cache lost it: read the file again
                known[h] = pm.keypoints(open_image(path_of[h]))
            return known[h]

        names, units = np.full(len(table), None, dtype=object), np.full(len(table), None, dtype=object)
        if len(good):
            names[ok], units[ok] = group_images(
                good["hash"].tolist(),
                np.stack(good["signature"].to_numpy()),
                keypoints_of,
                use_cache=use_cache,
                progress=progress,
            )
        if use_cache:
            config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
            files.save_pickle_atomic(path, (names, units))
            if set(known) != set(stored):
                files.save_pickle_atomic(kp_path, {h: known[h] for h in path_of if h in known})
    table = table.copy()
    table["group"] = names
    table["split_unit"] = units  # groups linked by weaker evidence: kept on one side of the split too
    table["group_size"] = table.groupby("group")["path"].transform("size")
    table.loc[~ok, "group_size"] = np.nan
    return table


# ---------------------------------------------------------------- the split and what it reports


def split_of_groups(groups: pd.Series, val_fraction: float) -> pd.Series:
    """Group name -> "val" or "train": a hash of the group's name (its smallest content hash), so the
    split is the same on every machine and run, and growing val_fraction only adds groups. A new copy with a
    smaller hash renames its group and may move it: maskdet.split_memory keeps a folder's old files put."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")

    def one(g):
        if g is None or (isinstance(g, float) and np.isnan(g)):
            return None
        u = int(hashlib.sha1(f"maskdet-split:{g}".encode()).hexdigest()[:12], 16) / 16**12
        return "val" if u < val_fraction else "train"

    return groups.map(one)


def label_conflicts(table: pd.DataFrame) -> list[dict]:
    """Groups (exact or near copies of one photo) filed under more than one label: data errors. Each:
    group, split, and its files as (path, label), biggest groups first."""
    good = table[table["error"].isna() & table["group"].notna()]
    mixed = good.groupby("group")["label"].nunique()
    out = []
    for g in mixed[mixed > 1].index:
        rows = good[good["group"] == g].sort_values("path")
        out.append(
            {
                "group": g,
                "split": rows["split"].iloc[0] if "split" in rows else None,
                "files": [{"path": p, "label": lab} for p, lab in zip(rows["path"], rows["label"])],
            }
        )
    return sorted(out, key=lambda c: (-len(c["files"]), c["group"]))
