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
    """'mask 97%' / 'no mask 88%': the label and how sure the model is of it."""
    if label is None or p_mask is None:
        return "?"
    sure = p_mask if label == config.CLASS_NAMES[0] else 1 - p_mask
    return f"{'mask' if label == config.CLASS_NAMES[0] else 'no mask'} {sure:.0%}"


def draw_faces(image, faces: list[dict], max_side: int = 1200, numbered: bool = False) -> Image.Image:
    """A photo with each face's box drawn in its label's colour and 'mask 97%' written above it
    ('2: mask 97%' when numbered, to match a numbered list of the faces).

    `faces` are dicts with "box" (x0, y0, x1, y1 in the photo's pixels), "label" and "p_mask".
    The photo is shrunk to `max_side` first so boxes and text stay readable on screen.
    """
    img = images.open_image(image).copy() if not isinstance(image, Image.Image) else image.convert("RGB")
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    d = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 300))
    font = _font(max(11, round(max(img.size) / 60)))
    for number, face in enumerate(faces, 1):
        box = face.get("box")
        if box is None:
            continue
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        colour = COLOURS.get(face.get("label"), UNSURE_COLOUR)
        d.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        if numbered and len(faces) > 3:  # a crowd: the number only (the colour still says the label)
            text = str(number)
        else:
            text = (f"{number}: " if numbered else "") + label_text(face.get("label"), face.get("p_mask"))
        tx0, ty0, tx1, ty1 = d.textbbox((0, 0), text, font=font)
        tw, th = tx1 - tx0, ty1 - ty0
        ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y1 + line  # above the box, else below it
        tx = max(0.0, min(x0, img.width - tw - 2 * line))  # inside the picture
        d.rectangle([tx, ty, tx + tw + 2 * line, ty + th + 2 * line], fill=colour)
        d.text((tx + line - tx0, ty + line - ty0), text, fill="white", font=font)
    return img


def count_faces(faces: list[dict]) -> str:
    """'3 faces: 2 with mask, 1 without' (or 'no face found')."""
    labelled = [f for f in faces if f.get("label")]
    if not labelled:
        return "no face found"
    masked = sum(f["label"] == config.CLASS_NAMES[0] for f in labelled)
    n = len(labelled)
    return f"{n} face{'s' if n != 1 else ''}: {masked} with mask, {n - masked} without"
