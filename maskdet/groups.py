"""Near-duplicate groups (copies of one photo, each link verified) and the split that keeps a group on one side.

A group is a photo and its copies: the same bytes, or the same picture re-encoded, resized, flipped,
rotated (up to about 40 degrees), shifted, zoomed or cropped, as augmentation makes them. Two steps:
candidates are each image's nearest look-alikes by a colour-layout signature (cheap, flip-tolerant,
but it also likes different people in similar masks); each candidate pair is then verified by matching
ORB keypoints and fitting one similarity transform (rotation, scale, shift) with RANSAC, on the image
and on its mirror image. Different people share colours, never dozens of keypoints in one rigid layout.
Copies blurred, pixelated or recoloured keep too few keypoints: a pair short of that by a little gets a
second look, its pixels aligned (ECC, from the keypoints' transform) and compared. Groups are the connected
components of verified pairs, with no size cap.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from PIL import Image

from . import config, files

NEIGHBOURS = 12  # candidates: each image's nearest look-alikes by signature
MIN_SIMILARITY = 0.5  # ... and alike in colour (keypoints are matched in grey, so a same-shaped drawing would pass)
FEATURE_SIDE = 160  # keypoints are found on the image resized to this square (crops are 100-128 px)
N_FEATURES = 150
FAST_THRESHOLD = 10
# Keypoint pairs one similarity transform must explain to call two images one photo. Aligned portraits of
# different people (CelebA crops: eyes and mouth at the same pixels) reach 16-30 such pairs, copies mostly
# 30-80, so groups need MIN_INLIERS; weaker links (SPLIT_INLIERS) only keep images on one side of the split.
MIN_INLIERS = 24
SPLIT_INLIERS = 16
RANSAC_PX = 3.0  # reprojection error allowed, pixels at FEATURE_SIDE
SCALE_RANGE = (0.4, 2.5)  # a zoom beyond these is no augmentation of this data
# The second look: pairs with ALIGN_FROM..MIN_INLIERS inliers (blurred, pixelated, recoloured copies, and
# look-alikes) are aligned on THUMB_SIDE-px grey thumbnails by ECC from the keypoints' transform; copies of one
# photo correlate >= ALIGN_NCC over most of the picture, different people on a sample of 3,000 rejected pairs
# did not (docs/groups.md). A pair that passes counts as MIN_INLIERS: one photo.
ALIGN_FROM = 12
ALIGN_NCC = 0.975
THUMB_SIDE = 64
ALIGN_OVERLAP = 0.6  # of the thumbnail the aligned pictures must share
VERSION = 2  # of the grouping rule: part of every cache key here
_PARAMS = (
    f"{VERSION}|{NEIGHBOURS}|{MIN_SIMILARITY}|{FEATURE_SIDE}|{N_FEATURES}|{FAST_THRESHOLD}|{MIN_INLIERS}|"
    f"{SPLIT_INLIERS}|{RANSAC_PX}|{SCALE_RANGE}|{ALIGN_FROM}|{ALIGN_NCC}|{THUMB_SIDE}|{ALIGN_OVERLAP}"
)


# ---------------------------------------------------------------- per image


def signature(img: Image.Image) -> np.ndarray:
    """Colour-layout signature that survives the flips, small rotations, shifts and zooms of augmented
    copies: HSV histograms of the centre, its upper and its lower half. Only picks candidates."""
    a = np.asarray(img.resize((48, 48), Image.Resampling.BILINEAR).convert("HSV"))[6:42, 6:42]

    def hist(part):
        hsv = part.reshape(-1, 3).astype(np.int32)
        idx = (hsv[:, 0] * 12 // 256) * 16 + (hsv[:, 1] * 4 // 256) * 4 + (hsv[:, 2] * 4 // 256)
        x = np.sqrt(np.bincount(idx, minlength=192).astype(np.float32))
        return x / (np.linalg.norm(x) + 1e-9)

    return (np.concatenate([hist(a), hist(a[:18]), hist(a[18:])]) / np.sqrt(3)).astype(np.float32)


def prepare() -> None:
    """Load OpenCV in the calling thread (its first import is not for several threads at once)."""
    import cv2

    cv2.setNumThreads(1)  # images and pairs are processed in parallel already


def _orb():
    import cv2

    return cv2.ORB_create(nfeatures=N_FEATURES, edgeThreshold=15, patchSize=15, fastThreshold=FAST_THRESHOLD)


def keypoints(img: Image.Image) -> tuple:
    """ORB keypoints of the image and of its mirror image, and a grey thumbnail: (points, descriptors, mirror
    points, mirror descriptors, thumbnail); points float16 at FEATURE_SIDE, descriptors uint8 (n, 32),
    thumbnail uint8 THUMB_SIDE x THUMB_SIDE."""
    import cv2

    grey_img = img.convert("L")
    grey = np.asarray(grey_img.resize((FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BILINEAR))
    orb, out = _orb(), []
    for im in (grey, np.ascontiguousarray(grey[:, ::-1])):
        kp, des = orb.detectAndCompute(im, None)
        out.append(cv2.KeyPoint_convert(kp).astype(np.float16).reshape(-1, 2) if kp else np.zeros((0, 2), np.float16))
        out.append(des if des is not None else np.zeros((0, 32), np.uint8))
    out.append(np.asarray(grey_img.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)))
    return tuple(out)


def aligned_similarity(a: tuple, b: tuple, M: np.ndarray, mirrored: bool) -> float:
    """Correlation of a's thumbnail with b's (or b's mirror image's), b aligned onto a by ECC (an affine warp)
    starting from M, the keypoints' transform (a -> b at FEATURE_SIDE). -1 when the alignment fails, shears or
    zooms beyond SCALE_RANGE, or leaves less than ALIGN_OVERLAP of the picture shared."""
    import cv2

    blur = lambda t: cv2.GaussianBlur(t.astype(np.float32), (0, 0), 1.0)  # noqa: E731
    A, B = blur(a[4]), blur(np.ascontiguousarray(b[4][:, ::-1]) if mirrored else b[4])
    W = M.astype(np.float32).copy()
    W[:, 2] *= THUMB_SIDE / FEATURE_SIDE
    try:
        _, W = cv2.findTransformECC(
            A, B, W, cv2.MOTION_AFFINE, (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4), None, 1
        )
    except cv2.error:  # did not converge
        return -1.0
    s = np.linalg.svd(W[:, :2].astype(np.float64), compute_uv=False)
    if not (SCALE_RANGE[0] <= s[1] and s[0] <= SCALE_RANGE[1] and s[0] <= 1.25 * s[1]):  # a similarity, in range
        return -1.0
    size, flags = (THUMB_SIDE, THUMB_SIDE), cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(B, W, size, flags=cv2.INTER_LINEAR | flags)
    inside = cv2.warpAffine(np.ones_like(B), W, size, flags=cv2.INTER_NEAREST | flags) > 0
    if inside.mean() < ALIGN_OVERLAP:
        return -1.0
    x, y = A[inside] - A[inside].mean(), warped[inside] - warped[inside].mean()
    return float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-9))


# ---------------------------------------------------------------- pairs


def inliers(a: tuple, b: tuple) -> int:
    """How many keypoints of `a` one similarity transform maps onto `b` (or onto b's mirror image): the
    evidence that two images are one photo; MIN_INLIERS at least where a pair short of it passed the second
    look (aligned_similarity >= ALIGN_NCC). Deterministic (RANSAC seeded per pair)."""
    return inliers_many([(a, b)])[0]


_CHUNK = 8  # pairs matched at once: their arrays (about 3 MB) stay in the cache
_FAR = 1024  # above any Hamming distance of two 256-bit ORB descriptors: marks the padding


def _padded_words(descriptors: list[np.ndarray], side: int) -> np.ndarray:
    """ORB descriptors (n, 32) uint8 -> (4, len, side) uint64: each descriptor as four 64-bit words, zero rows
    after each set's own n."""
    out = np.zeros((len(descriptors), side, 4), np.uint64)
    for i, d in enumerate(descriptors):
        if len(d):
            out[i, : len(d)] = np.ascontiguousarray(d).view(np.uint64)
    return out.transpose(2, 0, 1).copy()


_buffers = threading.local()


def _workspace(shape: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's scratch arrays (uint64, uint8, int32) of a shape, kept between calls: fresh ones of a few
    MB each call cost more in page faults than the arithmetic in them."""
    n = int(np.prod(shape))
    have = getattr(_buffers, "arrays", None)
    if have is None or have[0].size < n:
        have = _buffers.arrays = (np.empty(n, np.uint64), np.empty(n, np.uint8), np.empty(n, np.int32))
    return tuple(a[:n].reshape(shape) for a in have)


def _scale_in_range(M: np.ndarray) -> bool:
    """Whether the transform's scale lies in SCALE_RANGE: the determinant as ad - bc, or (only where that is
    within rounding of a bound) as np.linalg.det gives it, so the answer is always the one det gives."""
    (a, b, _), (c, d, _) = M.tolist()
    det, tol = abs(a * d - b * c), 1e-9 * (abs(a * d) + abs(b * c)) + 1e-300
    lo, hi = SCALE_RANGE[0] ** 2, SCALE_RANGE[1] ** 2
    if lo + tol < det < hi - tol:
        return True
    if det < lo - tol or det > hi + tol:
        return False
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    return SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]


def inliers_many(pairs: list[tuple[tuple, tuple]]) -> list[int]:
    """inliers(a, b) of each (a, b), the same numbers: the descriptor matching (brute-force Hamming with a
    cross-check, as OpenCV's BFMatcher(NORM_HAMMING, crossCheck=True): each keypoint's nearest, the first
    of equals, kept when it is the other's nearest too; in query order) done for all pairs at once in
    NumPy, then the RANSAC fit per pair and orientation as before."""
    import cv2

    out = [0] * len(pairs)
    if not pairs:
        return out
    na = np.array([len(a[1]) for a, _ in pairs])
    nb = np.array([[len(b[1]), len(b[3])] for _, b in pairs])
    side = int(max(na.max(), nb.max()))
    if side == 0:
        return out
    wa = _padded_words([a[1] for a, _ in pairs], side)  # (4, P, side)
    wb = np.concatenate(
        [_padded_words([b[1] for _, b in pairs], side), _padded_words([b[3] for _, b in pairs], side)], axis=2
    )  # (4, P, 2 side): b, mirror
    xor, bits, dist = _workspace((len(pairs), side, 2 * side))
    for k in range(4):
        np.bitwise_xor(wa[k][:, :, None], wb[k][:, None, :], out=xor)
        np.bitwise_count(xor, out=bits)
        np.add(dist, bits, out=dist) if k else np.copyto(dist, bits)
    dist = dist.reshape(len(pairs), side, 2, side)
    for p in np.flatnonzero((na < side) | (nb < side).any(axis=1)):  # padding: never anyone's nearest
        dist[p, na[p] :] = _FAR
        dist[p, :, 0, nb[p, 0] :] = _FAR
        dist[p, :, 1, nb[p, 1] :] = _FAR
    nearest_b = dist.argmin(axis=3)  # (P, side, 2): each of a's keypoints' nearest in b (or its mirror)
    nearest_a = dist.argmin(axis=1)  # (P, 2, side): each of b's keypoints' nearest in a
    back = np.take_along_axis(nearest_a, nearest_b.transpose(0, 2, 1), axis=2)  # (P, 2, side)
    rows = np.arange(side)
    mutual = (back == rows) & (rows < na[:, None, None])
    mutual &= ((na[:, None] >= 4) & (nb >= 4))[:, :, None]
    counts = mutual.sum(axis=2)
    for p, (a, b) in enumerate(pairs):
        best, best_fit = 0, None
        pa = None
        for o, pb in ((0, b[0]), (1, b[2])):
            if counts[p, o] < ALIGN_FROM:
                continue
            if pa is None:
                pa = a[0].astype(np.float32)
            q = np.flatnonzero(mutual[p, o])
            t = nearest_b[p, q, o]
            cv2.setRNGSeed(0)
            M, mask = cv2.estimateAffinePartial2D(
                pa[q], pb.astype(np.float32)[t], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=200
            )
            count = int(mask.sum()) if M is not None else 0
            if count > best and _scale_in_range(M):
                best, best_fit = count, (M, o == 1)
            if best >= MIN_INLIERS:
                break  # the other orientation cannot change the verdict
        if ALIGN_FROM <= best < MIN_INLIERS and aligned_similarity(a, b, *best_fit) >= ALIGN_NCC:
            best = MIN_INLIERS
        out[p] = best
    return out


def candidate_pairs(signatures: np.ndarray, keys: np.ndarray, k: int | None = None) -> np.ndarray:
    """(i, j) pairs, i < j, of images among each other's k nearest look-alikes with a signature similarity
    of at least MIN_SIMILARITY, most alike first (ties
    by content key, so the order does not depend on file order)."""
    n = len(signatures)
    k = min(k or NEIGHBOURS, n - 1)
    if k < 1:
        return np.zeros((0, 2), np.int64)
    pi, pj, sims = [], [], []
    for start in range(0, n, 1024):
        block = signatures[start : start + 1024] @ signatures.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        cols = np.argpartition(-block, k - 1, axis=1)[:, :k]
        rows = np.repeat(np.arange(len(block)), k)
        pi.append(rows + start)
        pj.append(cols.ravel())
        sims.append(block[rows, cols.ravel()])
    pi, pj, s = np.concatenate(pi), np.concatenate(pj), np.concatenate(sims)
    lo, hi = np.minimum(pi, pj), np.maximum(pi, pj)
    _, first = np.unique(lo * n + hi, return_index=True)
    lo, hi, s = lo[first], hi[first], s[first]
    keep = s >= MIN_SIMILARITY
    lo, hi, s = lo[keep], hi[keep], s[keep]
    order = np.lexsort((np.maximum(keys[lo], keys[hi]), np.minimum(keys[lo], keys[hi]), -s))
    return np.stack([lo[order], hi[order]], axis=1)


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
    by content hash, signature and a `features_of(hash)` callable returning keypoints(). Exact copies (same
    hash) always join; other pairs join a group with MIN_INLIERS, a split unit (groups linked by weaker
    evidence, kept on one side of the split) with SPLIT_INLIERS. Verdicts are cached by content pair, so a
    rescan after adding files verifies only the new pairs. `progress(done, total)` follows the verification."""
    hashes = np.asarray(hashes, dtype=object)
    unique, inverse = np.unique(hashes, return_inverse=True)  # exact copies: one image
    if len(unique) == 0:
        return hashes, hashes
    first = np.zeros(len(unique), np.int64)
    first[inverse[::-1]] = np.arange(len(hashes))[::-1]
    pairs = candidate_pairs(signatures[first], unique)
    verdicts, cache_path = _verdict_cache() if use_cache else ({}, None)
    new = {}
    comps, units = _Components(len(unique)), _Components(len(unique))
    done = 0

    def check(chunk):
        return inliers_many([(features_of(unique[i]), features_of(unique[j])) for i, j in chunk])

    with ThreadPoolExecutor(max_workers=config.VERIFY_THREADS) as pool:
        for start in range(0, len(pairs), 512):
            # a pair already joined through others needs no verdict: the components are the same either way
            batch = [(i, j) for i, j in pairs[start : start + 512] if comps.find(i) != comps.find(j)]
            counts = {
                p: verdicts[(unique[p[0]], unique[p[1]])] for p in batch if (unique[p[0]], unique[p[1]]) in verdicts
            }
            fresh = [p for p in batch if p not in counts]
            chunks = [fresh[k : k + _CHUNK] for k in range(0, len(fresh), _CHUNK)]
            for chunk, found in zip(chunks, pool.map(check, chunks)):
                for (i, j), count in zip(chunk, found):
                    counts[(i, j)] = new[(unique[i], unique[j])] = count
            for i, j in batch:
                if counts[(i, j)] >= MIN_INLIERS:
                    comps.union(i, j)
                if counts[(i, j)] >= SPLIT_INLIERS:
                    units.union(i, j)
            done = min(start + 512, len(pairs))
            if progress:
                progress(done, len(pairs))
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


# ---------------------------------------------------------------- the split and what it reports


def split_of_groups(groups: pd.Series, val_fraction: float) -> pd.Series:
    """Group name -> "val" or "train": a hash of the group's name (its smallest content hash), so the
    split is the same on every machine and run, a group keeps its side when files are added unless it
    merges with another, and growing val_fraction only adds groups."""
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
