"""The candidate step of the near-duplicate groups (maskdet.groups): which pairs of images are worth verifying.
Each image's nearest look-alikes by a colour-layout signature (cheap, flip-tolerant, but it also likes
different people in similar masks), checked in two passes: first each image's likeliest copies by colour and
grey layout, then all look-alikes of the images found to have a copy (most images have none).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

NEIGHBOURS = 12  # candidates: each image's nearest look-alikes by signature
MIN_SIMILARITY = 0.5  # ... and alike in colour (keypoints are matched in grey, so a same-shaped drawing would pass)
# Most images have no copy, and checking all their look-alikes was most of a scan's time. So two passes: first
# each image's FIRST_PASS likeliest copies among WIDE_NEIGHBOURS look-alikes (colour similarity + GREY_WEIGHT x
# the correlation of GREY_SIDE-px grey thumbnails, mirror-tolerant), then all NEIGHBOURS look-alikes of the
# images the first pass found a copy of (docs/groups.md, "VERSION 4").
WIDE_NEIGHBOURS = 24
FIRST_PASS = 2
GREY_WEIGHT = 0.5
GREY_SIDE = 16
SECOND_PASS_SIMILARITY = 0.85  # ... of those look-alikes, the ones at least this alike in colour


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


# ---------------------------------------------------------------- candidate pairs


def look_alikes(signatures: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's k nearest look-alikes by signature, most alike first: (indices, similarities), (n, k)."""
    n = len(signatures)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    idx, sims = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    for start in range(0, n, 1024):
        block = signatures[start : start + 1024] @ signatures.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        cols = np.argpartition(block, n - k, axis=1)[:, n - k :]  # the k largest (no negated copy of the block)
        near = np.take_along_axis(block, cols, axis=1)
        order = np.argsort(-near, axis=1, kind="stable")
        idx[start : start + len(block)] = np.take_along_axis(cols, order, axis=1)
        sims[start : start + len(block)] = np.take_along_axis(near, order, axis=1)
    return idx, sims


def _ordered_pairs(rows: np.ndarray, cols: np.ndarray, score: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(i, j) pairs, i < j, each once, highest score first (ties by content key, so the order does not depend
    on file order)."""
    n = len(keys)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    _, first = np.unique(lo * n + hi, return_index=True)
    lo, hi, score = lo[first], hi[first], score[first]
    order = np.lexsort((np.maximum(keys[lo], keys[hi]), np.minimum(keys[lo], keys[hi]), -score))
    return np.stack([lo[order], hi[order]], axis=1).reshape(-1, 2)


def candidate_pairs(signatures: np.ndarray, keys: np.ndarray, k: int | None = None) -> np.ndarray:
    """(i, j) pairs, i < j, of images among each other's k nearest look-alikes with a signature similarity
    of at least MIN_SIMILARITY, most alike first (ties by content key)."""
    idx, sims = look_alikes(signatures, k or NEIGHBOURS)
    keep = sims >= MIN_SIMILARITY
    rows = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)
    return _ordered_pairs(rows[keep], idx[keep], sims[keep], keys)


def grey_thumbnails(thumbnails: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """photo_match's grey thumbnails -> GREY_SIDE-px ones, and those of the mirror images, as unit vectors
    around their mean: a dot product is their correlation."""
    import cv2

    def unit(x):
        x = x - x.mean(axis=1, keepdims=True)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-9)

    small = np.stack([cv2.resize(t, (GREY_SIDE, GREY_SIDE), interpolation=cv2.INTER_AREA) for t in thumbnails]).astype(
        np.float32
    )
    return unit(small.reshape(len(small), -1)), unit(small[:, :, ::-1].reshape(len(small), -1))


def first_pass_pairs(signatures: np.ndarray, greys: tuple, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first pass's pairs (each image's FIRST_PASS likeliest copies among its WIDE_NEIGHBOURS look-alikes,
    most likely first) and the second pass's candidates (NEIGHBOURS look-alikes at least SECOND_PASS_SIMILARITY
    alike in colour, most alike first, less those of the first pass)."""
    idx, sims = look_alikes(signatures, max(WIDE_NEIGHBOURS, NEIGHBOURS))
    rows = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)
    grey, mirror = greys
    corr = np.zeros(idx.shape, np.float32)
    for s in range(0, len(idx), 1024):  # blocks: all at once would take 24 x 1 KB per image
        g, i = grey[s : s + 1024], idx[s : s + 1024]
        corr[s : s + 1024] = np.maximum(np.einsum("nd,nkd->nk", g, grey[i]), np.einsum("nd,nkd->nk", g, mirror[i]))
    score = np.where(sims >= MIN_SIMILARITY, sims + GREY_WEIGHT * corr, -np.inf)
    top = np.argsort(-score, axis=1, kind="stable")[:, :FIRST_PASS]
    best = np.take_along_axis(score, top, axis=1)
    ok = best > -np.inf
    first = _ordered_pairs(rows[:, :FIRST_PASS][ok], np.take_along_axis(idx, top, axis=1)[ok], best[ok], keys)
    near = (np.arange(idx.shape[1]) < NEIGHBOURS)[None, :] & (sims >= SECOND_PASS_SIMILARITY)
    second = _ordered_pairs(rows[near], idx[near], sims[near], keys)
    n = len(keys)
    second = second[~np.isin(second[:, 0] * n + second[:, 1], first[:, 0] * n + first[:, 1])]
    return first, second
