"""Video clips made from real photos, for the video tests and benchmarks (maskdet ships no video).

Each scene photo of face-mask-scenes (Pascal VOC: its faces' boxes and labels are known) is held for a
while with a slow pan (PAN_PX across the hold), like a camera on a doorway, and a grey empty picture of
gap_s seconds follows it (the people have left), so the clip's people and their labels are the photos'
annotated faces:

    scenes = pick_scenes(SCENES, n=3)
    write_clip(scenes, "clip.mp4", seconds_each=2, fps=25)     # H.264; .webm VP8; .avi MJPEG; .y4m raw
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT = Path(__file__).resolve().parent.parent
SCENES = PROJECT.parent / "shared" / "datasets" / "face-mask-scenes"
SIZE = (640, 480)
PAN_PX = 32  # the frame slides this far across the photo while it is held
GREY = 128
CODECS = {
    ".mp4": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".webm": ("webm", "libvpx"),
    ".avi": ("avi", "mjpeg"),
    ".mkv": ("matroska", "libx264"),
}


def pick_scenes(
    folder: Path = SCENES,
    n: int = 3,
    min_side: int = 48,
    max_faces: int = 2,
    labels=("with_mask", "without_mask"),
    names=None,
) -> list:
    """The first n scenes (file-name order; or those named) whose every annotated face is one of
    `labels`, at most max_faces of them, each at least min_side px on the short side and wholly in view
    all through the pan once the photo fills the frame."""
    from maskdet import scenes as scene_lib

    chosen = []
    for scene in scene_lib.read_scenes(folder):
        if names is not None and scene.image.name not in names:
            continue
        if not 1 <= len(scene.faces) <= max_faces or any(f.label not in labels for f in scene.faces):
            continue
        with Image.open(scene.image) as im:
            size = im.size
        scale, x0, y0 = _placement(size)
        in_view = [
            f.box[0] * scale >= x0 + PAN_PX
            and f.box[2] * scale <= x0 + SIZE[0]  # at the pan's both ends
            and f.box[1] * scale >= y0
            and f.box[3] * scale <= y0 + SIZE[1]
            for f in scene.faces
        ]
        if all(in_view) and all(f.short_side * scale >= min_side for f in scene.faces):
            chosen.append(scene)
            if len(chosen) == n:
                break
    return chosen


def _placement(size) -> tuple[float, int, int]:
    """How a photo fills the frame: its scale, and the frame's first top-left corner on the scaled photo
    (centred, the pan going right from there)."""
    scale = max((SIZE[0] + PAN_PX) / size[0], SIZE[1] / size[1])
    w, h = round(size[0] * scale), round(size[1] * scale)
    return scale, (w - SIZE[0] - PAN_PX) // 2, (h - SIZE[1]) // 2


def scene_frames(scene, frames: int):
    """The frames of one held scene: (RGB array of SIZE, [annotated boxes in frame pixels])."""
    from maskdet import images

    photo = images.open_image(scene.image)
    scale, x0, y = _placement(photo.size)
    big = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BILINEAR)
    for i in range(frames):
        x = x0 + round(PAN_PX * i / max(frames - 1, 1))
        frame = np.asarray(big.crop((x, y, x + SIZE[0], y + SIZE[1])))
        boxes = [tuple(round(v * scale) - o for v, o in zip(f.box, (x, y, x, y))) for f in scene.faces]
        yield frame, boxes


def clip_frames(scene_list, seconds_each: float, fps: int, gap_s: float, repeat: int):
    """Every frame of the clip, one at a time: each scene held seconds_each, then gap_s of grey."""
    grey = np.full((SIZE[1], SIZE[0], 3), GREY, np.uint8)
    for _ in range(repeat):
        for scene in scene_list:
            for frame, _boxes in scene_frames(scene, round(seconds_each * fps)):
                yield frame
            for _ in range(round(gap_s * fps)):
                yield grey


def write_clip(scene_list, out, seconds_each: float = 2.0, fps: int = 25, gap_s: float = 1.5, repeat: int = 1) -> Path:
    """The scenes one after another, each held seconds_each and followed by gap_s of grey; the whole
    played `repeat` times. Streams: one frame in memory at a time."""
    import av

    out = Path(out)
    if out.suffix == ".y4m":
        return _write_y4m(clip_frames(scene_list, seconds_each, fps, gap_s, repeat), out, fps)
    fmt, codec = CODECS[out.suffix]
    with av.open(str(out), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        for n, frame in enumerate(clip_frames(scene_list, seconds_each, fps, gap_s, repeat)):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = n
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def _write_y4m(frames, out: Path, fps: int) -> Path:
    """A YUV4MPEG2 file, what Chromium's fake camera plays (--use-file-for-fake-video-capture), looped."""
    import av

    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{SIZE[0]} H{SIZE[1]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            f.write(b"FRAME\n")
            for plane, (w, h) in zip(yuv.planes, (SIZE, (SIZE[0] // 2, SIZE[1] // 2), (SIZE[0] // 2, SIZE[1] // 2))):
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:h, :w]
                f.write(rows.tobytes())
    return out
