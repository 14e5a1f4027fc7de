"""Finding the faces in a photo, masked ones included: one box per face, and only faces get a label.

Three finders look (their networks: maskdet.finders): MTCNN on the photo and on its mirror image,
BlazeFace's back-camera model on the whole photo and on four overlapping tiles of it (small faces
grow), and BlazeFace's full-range model. Their boxes are merged into one per face (overlap, or one box
inside another), and each merged box gets a face score from how many finders agree and how sure they
are. A box is a face when two finders agree or one is sure, and it is at least MIN_LABEL_SIDE pixels
(smaller ones need all three finders); the others are doubtful: never labelled, only listed when asked.
Measured on face-mask-scenes, each half apart: docs/scenes.md (`python benchmarks/bench_scenes.py`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import access, finders
from .boxes import cover, crop_box, iou  # noqa: F401  (iou and crop_box: used through faces. elsewhere)
from .finders import blaze_detector, detector  # noqa: F401

# Photos larger than this (longer side, pixels) are shrunk for finding and the boxes mapped back:
# finding time grows with the pixel count, and a face that is still under ~20 px at this size is
# too small to classify anyway.
FIND_MAX_SIDE = 1024
# How training crops (facemask-12k) frame a face: their side is 1.0-1.3 times the longer side of the
# box MTCNN finds in them (median 1.13 masked, 1.01 unmasked), centred. So a found face's square is
# widened by this share of its side on each side (side x 1.1) before it is classified.
FACE_MARGIN = 0.05

# The finders' scores: from AGREE up a finder's box counts as a vote; from SURE up it is a face on that
# finder's word alone (MTCNN only when both its passes found it). The full-range model is never sure
# alone. Chosen on face-mask-scenes with both halves of the photos reported (docs/scenes.md): from
# MTCNN's 0.7 (its ONet threshold) and BlazeFace's 0.5 (MediaPipe's default), lowered where a second
# finder's vote keeps the false boxes out.
AGREE = {"mtcnn": 0.7, "blaze": 0.35, "full": 0.25}
SURE = {"mtcnn": 0.98, "blaze": 0.65}
# A face smaller than MIN_LABEL_SIDE (shorter side of its box, pixels of the photo) needs all three
# finders to agree, and one under SMALLEST_SIDE is always doubtful: on face-mask-scenes most boxes this
# small that fewer finders agree on are no annotated face (hands, hair, blurred heads in the distance),
# while crowds on 400-px photos are made of faces of 16-24 px.
MIN_LABEL_SIDE = 24
SMALLEST_SIDE = 16
# Two boxes are one face when they overlap this much (IoU), or when this much of the smaller lies
# inside the larger (a box on the mouth inside a box on the whole face).
SAME_FACE_IOU = 0.3
SAME_FACE_COVER = 0.5
# BlazeFace's input is 256 px: on a 1000-px photo a 30-px face shrinks to 8 px, which it misses. The
# photo is also searched in TILES x TILES overlapping tiles of TILE_SHARE of its longer side; a tile's
# finds count when they are small (up to TILE_FACE_MAX of the tile) and not cut by its edge.
TILES, TILE_SHARE, TILE_FACE_MAX = 2, 0.6, 0.4
# Whose box a merged face keeps: MTCNN's (the crops are calibrated on its boxes), else BlazeFace's.
_PRIORITY = {"mtcnn": 0, "blaze": 1, "full": 2}


# BlazeFace's passes run in this pool while MTCNN runs in the caller's thread (MTCNN spends much of its
# time in Python between its networks); threads, as many as photos may be classified at once.
_POOL = ThreadPoolExecutor(max_workers=access.MAX_CLASSIFICATIONS, thread_name_prefix="blazeface")


@dataclass(frozen=True)
class Face:
    """One found face: its box (xmin, ymin, xmax, ymax; pixels of the photo given), its face score
    (0-1; 1: two finders agree or one is sure), which finders found it, and whether it is confirmed
    (a face that gets a label) or doubtful."""

    box: tuple[int, int, int, int]
    score: float
    found_by: tuple[str, ...] = ()
    confirmed: bool = True


@dataclass
class _Candidate:
    box: tuple
    finder: str
    score: float
    mtcnn_pass: int | None = None


def find_faces(
    image: Image.Image,
    max_side: int = FIND_MAX_SIDE,
    mirrored: bool = True,
    blaze: bool = True,
    tiles: bool = True,
    full_range: bool = True,
    doubtful: bool = False,
) -> list[Face]:
    """The faces in an RGB photo, left to right; boxes are pixels of `image`, whatever size it has.

    The finders (all on by default; switched off for speed or comparison): MTCNN on the photo and, with
    `mirrored`, on its mirror image (its proposals differ enough that the two find more masked faces);
    BlazeFace's back-camera model with `blaze`, also on overlapping tiles with `tiles`; its full-range
    model with `full_range`. Returns confirmed faces only, or with `doubtful` the doubtful boxes too
    (Face.confirmed False): one finder alone and not sure, or too small for the finders that agree.
    """
    scale = min(1.0, max_side / max(image.size))
    searched = (
        image
        if scale == 1.0
        else image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
        )
    )
    blaze_finds = _POOL.submit(_blaze_candidates, searched, blaze, tiles, full_range)  # beside MTCNN's Python work
    candidates = [
        _Candidate(box, "mtcnn", score, p)
        for box, _, score, p in finders.mtcnn_find(np.asarray(searched, dtype=np.float32), mirrored)
    ]
    candidates += blaze_finds.result()

    found = []
    for group in _merge(candidates):
        x0, y0, x1, y1 = (float(v) / scale for v in group[0].box)
        box = (max(0, round(x0)), max(0, round(y0)), min(image.width, round(x1)), min(image.height, round(y1)))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue
        score, side = face_score(group), min(box[2] - box[0], box[3] - box[1])
        finders_seen = tuple(sorted({c.finder for c in group}, key=_PRIORITY.get))
        confirmed = score >= 1.0 and (side >= MIN_LABEL_SIDE or (side >= SMALLEST_SIDE and len(finders_seen) == 3))
        if confirmed or doubtful:
            found.append(Face(box, round(score, 3), finders_seen, confirmed))
    return sorted(found, key=lambda f: (f.box[0], f.box[1]))


def _blaze_candidates(searched: Image.Image, blaze: bool, tiles: bool, full_range: bool) -> list[_Candidate]:
    """BlazeFace's finds: the back model on the photo (and its tiles), the full-range model on the photo."""
    candidates = []
    if blaze and (back := blaze_detector("back")) is not None:
        for x0, y0, tile in _tiles(searched) if tiles else [(0, 0, searched)]:
            candidates += [
                _Candidate((b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0), "blaze", s)
                for b, _, s in back(tile, min_score=AGREE["blaze"])
                if tile is searched or _whole_in_tile(b, tile.size, (x0, y0), searched.size)
            ]
    if full_range and (full := blaze_detector("full")) is not None:
        candidates += [_Candidate(b, "full", s) for b, _, s in full(searched, min_score=AGREE["full"])]
    return candidates


def _tiles(image: Image.Image):
    """The whole photo, then TILES x TILES overlapping tiles of it: [(x offset, y offset, picture)]."""
    out = [(0, 0, image)]
    side = round(max(image.size) * TILE_SHARE)
    if side >= min(image.size):  # a tile would hold the photo's whole height or width: no finer view
        side = min(image.size)
    xs = np.linspace(0, image.width - side, TILES).round().astype(int) if image.width > side else [0]
    ys = np.linspace(0, image.height - side, TILES).round().astype(int) if image.height > side else [0]
    if len(xs) * len(ys) > 1:
        out += [(int(x), int(y), image.crop((int(x), int(y), int(x) + side, int(y) + side))) for y in ys for x in xs]
    return out


def _whole_in_tile(box, tile_size, offset, photo_size) -> bool:
    """Whether a tile's box is a small face wholly inside it: a box on a tile's inner edge is a face the
    tile cuts (an eye, half a face), and a face over TILE_FACE_MAX of the tile is the whole photo's to find."""
    (w, h), (x0, y0), (pw, ph) = tile_size, offset, photo_size
    if max(box[2] - box[0], box[3] - box[1]) > TILE_FACE_MAX * min(w, h):
        return False
    return not (
        (x0 > 0 and box[0] <= 1)
        or (y0 > 0 and box[1] <= 1)
        or (x0 + w < pw and box[2] >= w - 1)
        or (y0 + h < ph and box[3] >= h - 1)
    )


def _merge(candidates: list[_Candidate]) -> list[list[_Candidate]]:
    """Candidates -> groups that are one face each; a group's first candidate gives its box (MTCNN's
    best where MTCNN found it, else BlazeFace's, else the full-range model's)."""
    groups: list[list[_Candidate]] = []
    for c in sorted(candidates, key=lambda c: (_PRIORITY[c.finder], -c.score)):
        for group in groups:
            if iou(c.box, group[0].box) >= SAME_FACE_IOU or cover(c.box, group[0].box) >= SAME_FACE_COVER:
                group.append(c)
                break
        else:
            groups.append([c])
    return groups


def face_score(group: list[_Candidate]) -> float:
    """0-1 from the finders' votes: each finder that agrees (score >= AGREE) gives a vote of 1, growing
    to 2 at SURE; the score is half their sum, capped at 1. So 1.0: two finders agree or one is sure;
    0.5-0.99: one finder, not sure."""
    votes = 0.0
    for finder, agree in AGREE.items():
        scores = [c.score for c in group if c.finder == finder]
        if not scores or max(scores) < agree:
            continue
        best, vote = max(scores), 1.0
        sure = SURE.get(finder)
        if sure is not None and (finder != "mtcnn" or len({c.mtcnn_pass for c in group if c.finder == finder}) == 2):
            vote += float(np.clip((best - agree) / (sure - agree), 0.0, 1.0))
        votes += vote
    return min(1.0, votes / 2)


def face_crops(image: Image.Image, boxes, margin: float = FACE_MARGIN) -> list[Image.Image]:
    """The face crops to classify: each box squared and widened by crop_box."""
    return [image.crop(crop_box(b, image.size, margin)) for b in boxes]
