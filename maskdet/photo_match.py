"""Is a pair of images one photo? The evidence, from each image's ORB keypoints (and those of its mirror
image) and a grey thumbnail: matched keypoints that one similarity transform (rotation, scale, shift) explains,
fitted with RANSAC; for a pair a few keypoints short, the thumbnails aligned by ECC and compared. Different
people share colours and poses, never dozens of keypoints in one rigid layout, nor every pixel once aligned.
maskdet.groups picks the candidate pairs and joins what this module verifies.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

KEYPOINTS_VERSION = 2  # of what keypoints() returns: names their cache (groups.VERSION may change without it)
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
# The second look: pairs with ALIGN_FROM..MIN_INLIERS inliers (blurred, pixelated, recoloured or stretched
# copies, and look-alikes) are aligned on THUMB_SIDE-px grey thumbnails by ECC from the keypoints' transform;
# copies of one photo correlate >= ALIGN_NCC over most of the picture, different people (aligned CelebA
# portraits: 0.951-0.963) did not (docs/groups.md). A pair that passes counts as MIN_INLIERS: one photo; one
# that reaches ALIGN_SPLIT_NCC counts as SPLIT_INLIERS: kept on one side of the split, not called one photo.
ALIGN_FROM = 8
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


CHUNK = 8  # pairs matched at once: their arrays (about 3 MB) stay in the cache
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
    in query order) done for all pairs at once in NumPy, then the RANSAC fit per pair and orientation."""
    import cv2

    out = [(0, None)] * len(pairs)
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
            if counts[p, o] < align_from:
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
        out[p] = (best, best_fit)
    return out
