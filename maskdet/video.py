"""Reading video files: which container a file is, what it holds (probe), and its frames decoded one at
a time, never the whole video in memory. The analysis of a file is maskdet/video_analysis.py's, a live
camera's maskdet/camera.py's.

Video files are read by FFmpeg (PyAV) after their first bytes say which container they are (mp4 / mov,
webm / mkv, avi): FFmpeg is told that container, so a playlist or a concat script posing as a video never
makes it open other files.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config

# Frames are analysed and written at most this large (longer side, pixels): a 4K frame takes 9 times a
# 720p frame's time to search and encode, and faces big enough to classify stay big enough at this size.
WORK_SIDE = 1280
# Containers read, told by their first bytes; each maps to the FFmpeg demuxer that reads it.
CONTAINERS = {"mp4": "mov", "mov": "mov", "webm": "matroska", "mkv": "matroska", "avi": "avi"}
VIDEO_EXTENSIONS = ("mp4", "mov", "webm", "mkv", "avi", "m4v")
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


class VideoError(ValueError):
    """An input that is not a usable video; the message says why, for a user."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, read from its header (frames is an estimate where the header has none)."""

    name: str
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    frames: int

    def describe(self) -> str:
        return (
            f"{self.width}x{self.height}, {self.fps:.3g} fps, {fmt_duration(self.duration_s)} "
            f"({self.codec}, {self.container})"
        )


def fmt_duration(seconds: float) -> str:
    """6.04 -> '6.0 s'; 62.5 -> '1:02'; 3725 -> '1:02:05'."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# ---------------------------------------------------------------- opening a video


def _name_of(source) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return Path(getattr(source, "name", None) or "video").name


def _as_file(source):
    """A path or bytes or a file object -> a seekable binary file object and whether we opened it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise VideoError(f"{path}: no such file")
        if path.is_dir():
            raise VideoError(f"{path}: is a folder, not a video")
        return open(path, "rb"), True
    source.seek(0)
    return source, False


def sniff(head: bytes) -> str | None:
    """The container a file's first bytes announce (a key of CONTAINERS), or None."""
    if len(head) >= 12 and head[4:8] in _MP4_BOXES:
        return "mov" if head[8:10] == b"qt" else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, of which WebM is a profile
        return "webm" if b"webm" in head[:64] else "mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


@contextmanager
def open_video(source, max_pixels: int | None = None, max_seconds: float | None = None):
    """Open a video file (path, bytes or file object) for reading: yields (container, its video stream,
    VideoInfo). Anything that is not a usable video raises VideoError with a one-sentence reason, and
    nothing stays open either way."""
    import av

    name = _name_of(source)
    max_pixels = config.VIDEO_MAX_PIXELS if max_pixels is None else max_pixels
    f, ours = _as_file(source)
    container = None
    try:
        head = f.read(64)
        f.seek(0)
        if not head:
            raise VideoError(f"{name}: the file is empty (0 bytes)")
        kind = sniff(head)
        if kind is None:
            raise VideoError(f"{name}: not a video file (mp4, mov, webm, mkv or avi are read)")
        try:
            container = av.open(f, format=CONTAINERS[kind])
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise VideoError(
                f"{name}: the {kind} file is damaged or truncated and cannot be read ({_ffmpeg_reason(exc)})"
            ) from None
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "no streams"
            raise VideoError(f"{name}: the file holds no picture ({what})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        if width < 2 or height < 2:
            raise VideoError(
                f"{name}: the video has no readable picture size ({width}x{height}); "
                "the file is damaged or its codec unknown"
            )
        if width * height > max_pixels:
            raise VideoError(
                f"{name}: {width}x{height} is too large a picture (limit {max_pixels:,} pixels, "
                "4K); shrink the video first"
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not 0 < fps <= 1000:
            fps = 25.0  # a header without a usable rate: timestamps still come from the frames
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = int(stream.frames or round(duration * fps))
        info = VideoInfo(name, kind, ctx.name or "?", width, height, round(fps, 3), round(duration, 3), frames)
        if max_seconds is not None and duration > max_seconds:
            raise VideoError(
                f"{name}: the video is {fmt_duration(duration)} long; this server analyses up to "
                f"{fmt_duration(max_seconds)} (cut it shorter, or use `python -m maskdet "
                "predict-video` on the command line, which has no limit)"
            )
        stream.thread_type = "AUTO"  # frame threads: decoding is a third of a file's time otherwise
        yield container, stream, info
    finally:
        if container is not None:
            container.close()
        if ours:
            f.close()


def _ffmpeg_reason(exc) -> str:
    """FFmpeg's words for what went wrong, without the file name it repeats."""
    text = getattr(exc, "strerror", None) or str(exc)
    return (text.strip() or type(exc).__name__)[:120]


def probe(source, max_pixels: int | None = None, max_seconds: float | None = None) -> VideoInfo:
    """What a video holds (VideoError if it is not a usable video); nothing is decoded."""
    with open_video(source, max_pixels, max_seconds) as (_, _, info):
        return info


def work_size(width: int, height: int, max_side: int = WORK_SIDE) -> tuple[int, int]:
    """The size frames are analysed and written at: at most max_side on the longer side, even numbers
    (H.264's 4:2:0 wants them)."""
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def frames(stream_container, stream, size: tuple[int, int]):
    """Decoded frames one at a time as (index, seconds, RGB uint8 array of `size`), turned upright when
    the file says it is to be shown rotated (a phone held upright: then `size` comes out turned, its height
    as the width). A file that breaks off mid-way raises Broken with the reason and the frames read."""
    import av

    w, h = size
    index = -1
    try:
        for frame in stream_container.decode(stream):
            index += 1
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
            turns = round((frame.rotation or 0) / 90) % 4  # counterclockwise quarter turns to show it
            if turns:
                rgb = np.ascontiguousarray(np.rot90(rgb, turns))
            t = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
            yield index, t, rgb
    except (av.error.FFmpegError, EOFError, OSError) as exc:
        raise Broken(_ffmpeg_reason(exc), index + 1) from None


class Broken(Exception):
    """A file that breaks off mid-way: the reason, and how many frames were read before it."""

    def __init__(self, reason: str, frames_read: int):
        super().__init__(reason)
        self.reason, self.frames_read = reason, frames_read
