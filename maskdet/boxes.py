"""Box arithmetic shared by the finders, the scene evaluation and the drawing: boxes are
(xmin, ymin, xmax, ymax) in pixels."""

from __future__ import annotations


def intersection(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0.0


def area(a) -> float:
    return max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])


def iou(a, b) -> float:
    """Intersection over union of two boxes."""
    inter = intersection(a, b)
    return inter / (area(a) + area(b) - inter) if inter else 0.0


def cover(a, b) -> float:
    """How much of the smaller box lies inside the other (1.0: one holds the other)."""
    inter = intersection(a, b)
    return inter / min(area(a), area(b)) if inter else 0.0


def crop_box(box, image_size: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """A face box -> the square around its centre, widened by `margin` of its side on each side and
    cut to the image (training crops are square; squaring keeps to_array from stretching the face)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = image_size
    return (
        max(0, round(cx - side / 2)),
        max(0, round(cy - side / 2)),
        min(w, round(cx + side / 2)),
        min(h, round(cy + side / 2)),
    )
