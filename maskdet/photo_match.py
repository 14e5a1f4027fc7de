"""Is a pair of images one photo? The evidence, from each image's ORB keypoints (and those of its mirror
image) and a grey thumbnail: matched keypoints that one similarity transform (rotation, scale, shift) explains,
fitted with RANSAC; for a pair a few keypoints short, the thumbnails aligned by ECC and compared. Different
people share colours and poses, never dozens of keypoints in one rigid layout, nor every pixel once aligned.
maskdet.groups picks the candidate pairs and joins what this module verifies.
"""

from __future__ import annotations

import numba
import numpy as np
from PIL import Image

KEYPOINTS_VERSION = 3  # of what keypoints() returns: names their cache (groups.VERSION may change without it)
FEATURE_SIDE = 128  # keypoints are found on the image resized to this square (crops are 100-128 px)
N_FEATURES = 150
FAST_THRESHOLD = 10
N_LEVELS = 5  # ORB's pyramid (scale 1.2 a level): 128 to 62 px
# Keypoint pairs one similarity transform must explain to call two images one photo. Aligned portraits of
# different people (CelebA crops: eyes and mouth at the same pixels) reach up to 27 such pairs, copies mostly
# 30-80 (docs/groups.md), so groups need MIN_INLIERS, or the second look below; weaker links (SPLIT_INLIERS)
# only keep images on one side of the split.
MIN_INLIERS = 28
SPLIT_INLIERS = 16
RANSAC_PX = 2.4  # reprojection error allowed, pixels at FEATURE_SIDE
SCALE_RANGE = (0.4, 2.5)  # a zoom beyond these is no augmentation of this data
# The second look: pairs with ALIGN_FROM..MIN_INLIERS inliers (blurred, pixelated, recoloured or stretched
# copies, and look-alikes) are aligned on THUMB_SIDE-px grey thumbnails by ECC from the keypoints' transform;
# copies of one photo correlate >= ALIGN_NCC over most of the picture, different people (aligned CelebA
# portraits: 0.951-0.963) did not (docs/groups.md). A pair that passes counts as MIN_INLIERS: one photo; one
# that reaches ALIGN_SPLIT_NCC counts as SPLIT_INLIERS: kept on one side of the split, not called one photo.
ALIGN_FROM = 7
ALIGN_NCC = 0.975
ALIGN_SPLIT_NCC = 0.95
THUMB_SIDE = 64
ALIGN_OVERLAP = 0.4  # of the thumbnail the aligned pictures must share (zoomed copies share less)
ALIGN_STRETCH = 2.0  # one axis stretched this much more than the other at most (the data's augmentation stretches)


# ---------------------------------------------------------------- per image


def prepare() -> None:
    """Load OpenCV in the calling thread (its first import is not for several threads at once)."""
    import cv2

    cv2.setNumThreads(1)  # images and pairs are processed in parallel already


def _orb():
    import cv2

    return cv2.ORB_create(
        nfeatures=N_FEATURES,
        nlevels=N_LEVELS,
        edgeThreshold=15,
        patchSize=15,
        fastThreshold=FAST_THRESHOLD,
        scoreType=cv2.ORB_FAST_SCORE,  # cheaper than Harris; the groups it gives: docs/groups.md, VERSION 4
    )


def _points(kp) -> np.ndarray:
    import cv2

    return cv2.KeyPoint_convert(kp).astype(np.float16).reshape(-1, 2) if kp else np.zeros((0, 2), np.float16)


def keypoints(img: Image.Image) -> tuple:
    """ORB keypoints of the image and of its mirror image, and a grey thumbnail: (points, descriptors, mirror
    points, mirror descriptors, thumbnail); points float16 at FEATURE_SIDE, descriptors uint8 (n, 32),
    thumbnail uint8 THUMB_SIDE x THUMB_SIDE. The mirror image's keypoints are the image's, mirrored (corners
    are found alike in both): only their descriptors are computed again, on the mirror image."""

    grey_img = img.convert("L")
    grey = np.asarray(grey_img.resize((FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BILINEAR))
    orb, out = _orb(), []
    kp, des = orb.detectAndCompute(grey, None)
    out += [_points(kp), des if des is not None else np.zeros((0, 32), np.uint8)]
    for k in kp:  # now the mirror image's
        x, y = k.pt
        k.pt, k.angle = (FEATURE_SIDE - 1 - x, y), (180 - k.angle) % 360
    kp, des = orb.compute(np.ascontiguousarray(grey[:, ::-1]), kp) if kp else ((), None)
    out += [_points(kp), des if des is not None else np.zeros((0, 32), np.uint8)]
    out.append(np.asarray(grey_img.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)))
    return tuple(out)


def aligned_similarity(a: tuple, b: tuple, M: np.ndarray, mirrored: bool) -> float:
    """Correlation of a's thumbnail with b's (or b's mirror image's), b aligned onto a by ECC (an affine warp)
    starting from M, the keypoints' transform (a -> b at FEATURE_SIDE). -1 when the alignment fails, shears or
    zooms beyond SCALE_RANGE, stretches beyond ALIGN_STRETCH, or leaves less than ALIGN_OVERLAP of the picture
    shared."""
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
    if not (SCALE_RANGE[0] <= s[1] and s[0] <= SCALE_RANGE[1] and s[0] <= ALIGN_STRETCH * s[1]):  # zoom, stretch
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
    look (aligned_similarity >= ALIGN_NCC), SPLIT_INLIERS at least where it came near (>= ALIGN_SPLIT_NCC).
    Deterministic (RANSAC seeded per pair)."""
    return inliers_many([(a, b)])[0]


CHUNK = 8  # pairs handed to a worker thread at once


@numba.njit(inline="always")
def _popcount(x):  # bits set in a uint64 (LLVM turns this into the CPU's popcount)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(nogil=True, cache=True)
def _mutual_nearest(a, b):
    """ORB descriptors as (n, 4) uint64 words: each of a's nearest in b by Hamming distance (the first of
    equals), and whether it is that one's nearest in a too (a cross-check, as OpenCV's BFMatcher(NORM_HAMMING,
    crossCheck=True)). One pass over the distances, none stored; releases the GIL."""
    na, nb = a.shape[0], b.shape[0]
    row_best, row_arg = np.full(na, 1 << 20, np.int64), np.zeros(na, np.int64)
    col_best, col_arg = np.full(nb, 1 << 20, np.int64), np.zeros(nb, np.int64)
    for i in range(na):
        a0, a1, a2, a3 = a[i, 0], a[i, 1], a[i, 2], a[i, 3]
        for j in range(nb):
            d = np.int64(_popcount(a0 ^ b[j, 0]) + _popcount(a1 ^ b[j, 1]) + _popcount(a2 ^ b[j, 2]))
            d += np.int64(_popcount(a3 ^ b[j, 3]))
            if d < row_best[i]:
                row_best[i], row_arg[i] = d, j
            if d < col_best[j]:
                col_best[j], col_arg[j] = d, i
    mutual = np.zeros(na, np.bool_)
    for i in range(na):
        mutual[i] = col_arg[row_arg[i]] == i
    return row_arg, mutual


def _words(descriptors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(descriptors).view(np.uint64).reshape(-1, 4)


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
    """inliers(a, b) of each (a, b), the same numbers: the keypoints' evidence (_fits), then the second look
    for the pairs a few inliers short."""
    out = []
    for (a, b), (best, fit) in zip(pairs, _fits(pairs, ALIGN_FROM)):
        if ALIGN_FROM <= best < MIN_INLIERS:
            ncc = aligned_similarity(a, b, *fit)
            if ncc >= ALIGN_NCC:
                best = MIN_INLIERS
            elif ncc >= ALIGN_SPLIT_NCC:
                best = max(best, SPLIT_INLIERS)
        out.append(best)
    return out


def evidence_many(pairs: list[tuple[tuple, tuple]], align_from: int = ALIGN_FROM) -> list[tuple[int, float | None]]:
    """The raw evidence of each pair, for studies of the rule (benchmarks/group_rules.py): its inliers before
    the second look, and its aligned correlation where align_from <= inliers < MIN_INLIERS (else None)."""
    return [
        (best, aligned_similarity(a, b, *fit) if align_from <= best < MIN_INLIERS else None)
        for (a, b), (best, fit) in zip(pairs, _fits(pairs, align_from))
    ]


def _fits(pairs: list[tuple[tuple, tuple]], align_from: int) -> list[tuple[int, tuple | None]]:
    """(inliers, (transform, mirrored)) of each pair, (0, None) where fewer than `align_from` keypoints match:
    the descriptor matching (brute-force Hamming with a cross-check, as OpenCV's BFMatcher(NORM_HAMMING,
    crossCheck=True): each keypoint's nearest, the first of equals, kept when it is the other's nearest too;
    in query order; _mutual_nearest), then the RANSAC fit, per pair and orientation (the mirror image's only
    where the first leaves the verdict open)."""
    import cv2

    out = [(0, None)] * len(pairs)
    for p, (a, b) in enumerate(pairs):
        best, best_fit = 0, None
        pa = None
        if len(a[1]) < 4:  # too few keypoints to tell anything
            continue
        for o, pb in ((0, b[0]), (1, b[2])):
            if len(b[1 + 2 * o]) < 4:
                continue
            nearest, mutual = _mutual_nearest(_words(a[1]), _words(b[1 + 2 * o]))
            q = np.flatnonzero(mutual)
            if len(q) < align_from:
                continue
            if pa is None:
                pa = a[0].astype(np.float32)
            t = nearest[q]
            cv2.setRNGSeed(0)
            M, mask = cv2.estimateAffinePartial2D(
                pa[q], pb.astype(np.float32)[t], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=200
            )
            count = int(mask.sum()) if M is not None else 0
            if count > best and _scale_in_range(M):
                best, best_fit = count, (M, o == 1)
            if best >= MIN_INLIERS:
                break  # the other orientation cannot change the verdict
        out[p] = (best, best_fit)
    return out
