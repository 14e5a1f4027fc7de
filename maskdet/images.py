"""Reading any image: a user's photo or a dataset file -> an RGB PIL image, and the one resize to the
model's input. Anything that is not a usable image raises ImageError with the reason, for a user."""

from __future__ import annotations

import io
import os
import stat
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import config

Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS


class ImageError(ValueError):
    """An input that is not a usable image; the message says why, for a user, and `reason` says
    which kind of trouble it is (one of SKIP_REASONS)."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


# Why a scan does not use a file of the class folders (the table's `skipped` column).
SKIP_REASONS = ("not an image", "empty file", "unreadable", "too small", "too large", "hidden file")


def open_image(source) -> Image.Image:
    """Any user image (path, bytes, file object or PIL image) -> RGB PIL image, EXIF-rotated.

    Raises ImageError with a one-sentence reason for anything that is not a usable image.
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "image")
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, (bytes, bytearray, memoryview)):
                data = bytes(source)
            elif isinstance(source, (str, Path)):
                path = Path(source)
                if not path.exists():
                    raise ImageError(f"{path}: no such file")
                if path.is_dir():
                    raise ImageError(f"{path}: is a folder, not an image")
                data = path.read_bytes()
            else:
                data = source.read()
            if not data:
                raise ImageError(f"{Path(name).name}: the file is empty (0 bytes)", "empty file")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                img.load()
        if img.width * img.height > config.MAX_IMAGE_PIXELS:
            raise ImageError(
                f"{Path(name).name}: {img.width}x{img.height} is too large (limit {config.MAX_IMAGE_PIXELS:,} pixels)",
                "too large",
            )
        if img.width < 2 or img.height < 2:
            raise ImageError(f"{Path(name).name}: {img.width}x{img.height} is too small to hold a face", "too small")
        img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
        return _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{Path(name).name}: the image is too large to open safely (limit {config.MAX_IMAGE_PIXELS:,} pixels)",
            "too large",
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{Path(name).name}: not an image file (or a format Pillow cannot read)", "not an image"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{Path(name).name}: the image is damaged or truncated ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit greyscale: scale to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        peak = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / peak)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_array(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> the model's uint8 input (IMAGE_SIZE, 3). The one resize used for
    training and serving alike, so the two cannot drift apart."""
    h, w = config.IMAGE_SIZE
    return np.asarray(img.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)


def sharpness(img: Image.Image) -> float:
    """Mean absolute Laplacian of the model-size greyscale image: low for upscaled or blurry crops."""
    g = np.asarray(img.convert("L").resize(config.IMAGE_SIZE[::-1], Image.Resampling.BILINEAR), np.float32)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


# ---------------------------------------------------------------- files told by content


@lru_cache(maxsize=1)
def _signed_formats() -> tuple[str, ...]:
    """The formats Pillow recognises by a signature in a file's first bytes (its plugins with an
    `accept` test). Files are identified among these only: a few formats (TGA, ...) have no signature
    and would claim stray non-image files."""
    Image.init()
    return tuple(f for f in Image.ID if Image.OPEN[f][1] is not None)


def _claimed_format(prefix: bytes) -> str | None:
    """The format whose signature starts `prefix`, if any: a file that claims to be an image."""
    for f in _signed_formats():
        try:
            if Image.OPEN[f][1](prefix):
                return f
        except Exception:  # an accept test on too few bytes
            continue
    return None


def read_image_file(path: str | Path, decode: bool = False) -> tuple:
    """A file's bytes with its format and mode, once its header (Pillow, nothing decoded) says it is an
    image: only an image is read whole. Raises ImageError saying why a file is not one. With `decode`, the
    image too, as open_image gives it, decoded from the header already read: (bytes, format, mode, image)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ImageError("not a regular file", "unreadable")
    with open(path, "rb") as f:
        try:
            raw = Image.open(f, formats=_signed_formats())  # the header only: decoded below if asked, from f
            image_format, mode = raw.format, raw.mode
        except UnidentifiedImageError:
            f.seek(0)
            prefix = f.read(16)
            if not prefix:
                raise ImageError("the file is empty (0 bytes)", "empty file") from None
            if claimed := _claimed_format(prefix):
                raise ImageError(
                    f"the image is damaged (it starts like {claimed}, but its header cannot be read)", "unreadable"
                ) from None
            raise ImageError("not an image file (or a format Pillow cannot read); not read", "not an image") from None
        except Image.DecompressionBombError:
            raise ImageError(
                f"the image is too large to open safely (limit {config.MAX_IMAGE_PIXELS:,} pixels)", "too large"
            ) from None
        f.seek(0)
        data = f.read()
        return (data, image_format, mode, open_image(raw)) if decode else (data, image_format, mode)
