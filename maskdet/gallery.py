"""Pictures for people: small thumbnails of dataset images, face boxes drawn on photos."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from . import config, images

# Label colours, shared by every picture and chart: green for a mask, red for none.
COLOURS = {config.CLASS_NAMES[0]: "#1a9850", config.CLASS_NAMES[1]: "#d73027"}
UNSURE_COLOUR = "#f39c12"


def thumbnail(path: str | Path, size: int = 128) -> bytes:
    """A dataset image as a small JPEG (longer side at most `size` px), cached by path and file time.
    An unreadable file gives a grey placeholder instead of an error."""
    path = str(path)
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = 0
    return _thumbnail(path, size, mtime)


@lru_cache(maxsize=4096)
def _thumbnail(path: str, size: int, mtime: int) -> bytes:
    try:
        img = images.open_image(path)
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
    except images.ImageError:
        img = placeholder(size)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def original(path: str | Path) -> bytes:
    """A dataset image's own file, to be shown as it is (at its own size, nothing resampled); a file that
    is not a readable image gives a placeholder JPEG instead."""
    try:
        images.open_image(path)  # refuses what a browser should not be sent: no image, a decompression bomb
        return Path(path).read_bytes()
    except images.ImageError:
        return thumbnail(path)


def placeholder(size: int = 128, text: str = "unreadable") -> Image.Image:
    """A grey square saying why there is no picture."""
    img = Image.new("RGB", (size, size), (210, 210, 210))
    d = ImageDraw.Draw(img)
    d.text((size // 2, size // 2), text, fill=(90, 90, 90), anchor="mm", font=_font(max(10, size // 10)))
    return img


@lru_cache(maxsize=16)
def _font(px: int):
    for name in ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf"):
        try:
            return ImageFont.truetype(name, px)
        except OSError:
            continue
    return ImageFont.load_default(px)


def label_text(label: str | None, p_mask: float | None) -> str:
    """'mask 97%' / 'no mask 88%' / 'unsure 55%': the label and how sure the model is of it."""
    if label is None or p_mask is None:
        return "?"
    if label == config.UNCERTAIN:
        return f"unsure {p_mask:.0%}"
    sure = p_mask if label == config.CLASS_NAMES[0] else 1 - p_mask
    return f"{'mask' if label == config.CLASS_NAMES[0] else 'no mask'} {sure:.0%}"


def draw_faces(image, faces: list[dict], max_side: int = 1200, numbered: bool = False) -> Image.Image:
    """A photo with each face's box drawn in its label's colour and a tag outside the box: 'mask 97%'
    ('2: mask 97%' when numbered, to match a numbered list of the faces; the number alone in a crowd).

    `faces` are dicts with "box" (x0, y0, x1, y1 in the photo's pixels), "label" and "p_mask". Tags never
    overlap one another nor cover a face: each goes to the first free place above, below, left or right
    of its box (nearest first), else where it covers least. The photo is shrunk to `max_side` first so
    boxes and text stay readable on screen; a small photo is enlarged so a crowd's tags fit.
    """
    img = images.open_image(image).copy() if not isinstance(image, Image.Image) else image.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if numbered and len(faces) > 3 and max(img.size) < 900:  # a crowd on a small photo: room for the tags
        scale = min(900, max_side) / max(img.size)
    if scale != 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    d = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 400))
    font = _font(max(11, round(max(img.size) / 60)))
    boxes = [tuple(float(v) * scale for v in f["box"]) for f in faces if f.get("box") is not None]
    for box, face in zip(boxes, (f for f in faces if f.get("box") is not None)):
        d.rectangle(box, outline=COLOURS.get(face.get("label"), UNSURE_COLOUR), width=line)
    taken: list[tuple] = []
    for number, face in enumerate(faces, 1):
        if face.get("box") is None:
            continue
        x0, y0, x1, y1 = (float(v) * scale for v in face["box"])
        colour = COLOURS.get(face.get("label"), UNSURE_COLOUR)
        if numbered and len(faces) > 3:  # a crowd: the number only (the colour still says the label)
            text = str(number)
        else:
            text = (f"{number}: " if numbered else "") + label_text(face.get("label"), face.get("p_mask"))
        tx0, ty0, tx1, ty1 = d.textbbox((0, 0), text, font=font)
        tw, th = tx1 - tx0 + 2 * line, ty1 - ty0 + 2 * line
        cx = (x0 + x1 - tw) / 2
        spots = [
            (x0, y0 - th - 1),
            (x0, y1 + 1),
            (x0 - tw - 1, (y0 + y1 - th) / 2),
            (x1 + 1, (y0 + y1 - th) / 2),
            (cx, y0 - 2 * th - 2),
            (cx, y1 + th + 2),
        ]
        rect = _place(spots, (tw, th), img.size, taken + boxes)
        taken.append(rect)
        d.rectangle(rect, fill=colour)
        d.text((rect[0] + line - tx0, rect[1] + line - ty0), text, fill="white", font=font)
    img.info["tags"] = taken  # where the tags went (pixels of the drawn picture), for whoever checks them
    return img


def _place(spots, tag_size, picture_size, obstacles) -> tuple:
    """The first spot where a tag of tag_size, kept inside the picture, overlaps no obstacle; else the
    spot where it overlaps least."""
    (tw, th), (w, h) = tag_size, picture_size
    best = None
    for x, y in spots:
        x, y = max(0.0, min(x, w - tw)), max(0.0, min(y, h - th))
        rect = (x, y, x + tw, y + th)
        clash = sum(_overlap(rect, r) for r in obstacles)
        if clash == 0:
            return rect
        if best is None or clash < best[0]:
            best = (clash, rect)
    return best[1]


def _overlap(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    return iw * ih if iw > 0 and ih > 0 else 0.0


def count_faces(faces: list[dict]) -> str:
    """'3 faces: 2 with mask, 1 without' (and ', 1 uncertain'), or 'no face found'."""
    labelled = [f for f in faces if f.get("label")]
    if not labelled:
        return "no face found"
    masked = sum(f["label"] == config.CLASS_NAMES[0] for f in labelled)
    bare = sum(f["label"] == config.CLASS_NAMES[1] for f in labelled)
    unsure = len(labelled) - masked - bare
    n = len(labelled)
    return f"{n} face{'s' if n != 1 else ''}: {masked} with mask, {bare} without" + (
        f", {unsure} uncertain" if unsure else ""
    )
