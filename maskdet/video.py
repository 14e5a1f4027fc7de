"""Moving pictures: video files and live camera frames through the find-and-classify path of photos,
with a tracker (maskdet/tracking.py) that counts people, not frames.

- `analyse(source, classifier, every=N, out=...)` streams a file: one frame decoded at a time (never the
  whole video in memory), every N-th frame's faces found and classified in one batch, each face joined to
  a track, every frame written to an annotated H.264 mp4 with the newest boxes, progress and cancel
  through callbacks. Its summary says how many people were seen and with which label.
- `LiveAnalyser` is for a camera: each frame gets the newest result drawn on it at once and is offered to
  a worker thread that analyses the newest frame only, so the picture never waits for the finder.

Video files are read by FFmpeg (PyAV) after their first bytes say which container they are (mp4 / mov,
webm / mkv, avi): FFmpeg is told that container, so a playlist or a concat script posing as a video never
makes it open other files.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import config, faces as face_finder, files, gallery, images, tracking

# How faces are found in a frame, fastest first. "fast": BlazeFace alone (14-29 ms a 640x480 frame here; on
# photos it finds 83% of face-mask-scenes' faces against 94% for the photo finder), the default for live and
# files, the only one that keeps up with a camera; "balanced": the photo finder without MTCNN's mirror pass;
# "thorough": the photo finder as the Classify page runs it. docs/video.md has the measured figures.
FINDERS = ("fast", "balanced", "thorough")
DEFAULT_FINDER = "fast"
# BlazeFace's score threshold when it finds alone: MediaPipe's own default.
BLAZE_MIN_SCORE = 0.5
DEFAULT_EVERY = 2  # analyse every 2nd frame of a file: a 25 fps clip gives 12.5 looks a second
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
    as the width). A file that breaks off mid-way raises _Broken with the reason and the frames read."""
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
        raise _Broken(_ffmpeg_reason(exc), index + 1) from None


class _Broken(Exception):
    def __init__(self, reason: str, frames_read: int):
        super().__init__(reason)
        self.reason, self.frames_read = reason, frames_read


# ---------------------------------------------------------------- one frame: find and classify


def _back_camera_blaze():
    """BlazeFace's back-camera model (256 px, faces near and mid-range), as maskdet.faces serves it, or None."""
    try:
        return face_finder.blaze_detector("back")
    except TypeError:  # a faces module with one BlazeFace model, asked for without a name
        return face_finder.blaze_detector()


class FrameAnalyser:
    """Finds the faces in an RGB frame and classifies them in one batch: [{"box", "p_mask", "label",
    "score"}], boxes in pixels of the frame given. Thread-safe as the classifier and finders are."""

    def __init__(self, classifier, finder: str = DEFAULT_FINDER):
        if finder not in FINDERS:
            raise ValueError(f"finder must be one of {', '.join(FINDERS)}, not {finder!r}")
        self.classifier, self.finder = classifier, finder
        self._blaze = _back_camera_blaze() if finder == "fast" else None
        if finder == "fast" and self._blaze is None:
            self.finder = "balanced"  # BlazeFace's wheel missing: MTCNN finds

    def find(self, picture: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
        if self.finder == "fast":
            w, h = picture.size
            found = []
            for answer in self._blaze(picture, min_score=BLAZE_MIN_SCORE):
                (x0, y0, x1, y1), score = answer[0], answer[-1]  # (box, [keypoints,] score)
                box = (max(0, round(x0)), max(0, round(y0)), min(w, round(x1)), min(h, round(y1)))
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    found.append((box, float(score)))
            return found
        found = face_finder.find_faces(picture, mirrored=self.finder == "thorough")
        return [(tuple(int(v) for v in f.box), float(f.score)) for f in found]

    def __call__(self, rgb: np.ndarray) -> list[dict]:
        picture = Image.fromarray(rgb)
        found = self.find(picture)
        if not found:
            return []
        crops = face_finder.face_crops(picture, [box for box, _ in found])
        probs = self.classifier.probs(np.stack([images.to_array(c) for c in crops]))
        return [
            {
                "box": list(box),
                "p_mask": round(float(p), 4),
                "label": self.classifier.label(float(p)),
                "score": round(score, 3),
            }
            for (box, score), p in zip(found, probs)
        ]


def draw(rgb: np.ndarray, faces: list[dict], note: str | None = None) -> np.ndarray:
    """The frame with each face's box in its label's colour and '#track mask 97%' above it, and a note
    in the top-left corner; the input array is left as it was."""
    picture = Image.fromarray(rgb)
    d = ImageDraw.Draw(picture)
    line = max(2, round(max(picture.size) / 320))
    font = gallery._font(max(11, round(max(picture.size) / 45)))
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        colour = gallery.COLOURS.get(face.get("label"), gallery.UNSURE_COLOUR)
        d.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        text = gallery.label_text(face.get("label"), face.get("p_mask"))
        if face.get("track"):
            text = f"#{face['track']} {text}"
        _label(d, (x0, y0, y1), text, colour, font, line, picture.width)
    if note:
        _label(d, (0, line * 8, 0), note, "#333333", font, line, picture.width)
    return np.asarray(picture)


def _label(d, where, text, colour, font, line, width):
    x0, y0, y1 = where
    tx0, ty0, tx1, ty1 = d.textbbox((0, 0), text, font=font)
    tw, th = tx1 - tx0, ty1 - ty0
    ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y1 + line
    tx = max(0, min(x0, width - tw - 2 * line))
    d.rectangle([tx, ty, tx + tw + 2 * line, ty + th + 2 * line], fill=colour)
    d.text((tx + line - tx0, ty + line - ty0), text, fill="white", font=font)


# ---------------------------------------------------------------- a video file


class Cancelled(Exception):
    """The caller asked the analysis to stop."""


class _Writer:
    """The annotated H.264 mp4, written to a file object (bytes in memory) or a path (aside, renamed into
    place when the video is complete; removed on an error)."""

    def __init__(self, out, size: tuple[int, int], fps: float):
        import av

        self._aside = None
        if isinstance(out, (str, Path)):
            self._aside = files.written_aside(Path(out).expanduser())
            target = str(self._aside.__enter__())
            options = {"movflags": "+faststart"}  # plays while it downloads
        else:
            target, options = out, {}
        self.container = av.open(target, "w", format="mp4", options=options)
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        # veryfast at CRF 26: ~5 ms a 640x480 frame here, a fraction of the analysis; boxes stay sharp
        self.stream.options = {"crf": "26", "preset": "veryfast"}
        self.stream.codec_context.time_base = Fraction(1) / rate
        self._n = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._n
        self._n += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self, keep: bool) -> None:
        try:
            if keep:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()
            if self._aside is not None:
                if keep:
                    self._aside.__exit__(None, None, None)  # renamed into place
                else:
                    self._aside.__exit__(Cancelled, Cancelled(), None)  # removed


def analyse(
    source,
    classifier,
    every: int = DEFAULT_EVERY,
    out=None,
    finder: str = DEFAULT_FINDER,
    progress=None,
    cancel=None,
    on_frame=None,
    max_seconds: float | None = None,
    max_side: int = WORK_SIDE,
) -> dict:
    """A video file's faces: every `every`-th frame searched, its faces classified and tracked.

    out: a path or a writable binary file object for the annotated H.264 mp4 (every frame, with the
    newest boxes drawn), or None. progress(done_frames, total_frames, elapsed_s) after each analysed
    frame; cancel() -> True stops the analysis early (what was analysed is kept: the summary says
    "cancelled" and the annotated video holds the frames up to there). on_frame(record) gets each analysed
    frame's record, {"frame", "t", "faces": [{"box", "p_mask", "label", "score", "track"}]}, boxes in the
    source video's pixels. Returns the summary: the video's info, how many frames were analysed and how
    fast, the counts of people ("people", "with_mask", "without_mask"), each person's track, the timeline
    of faces per analysed frame, and a one-line "sentence". A file that is not a usable video raises
    VideoError, and a file cut off mid-way is analysed up to the break ("broken" says why).
    """
    if every < 1:
        raise ValueError("every must be 1 or more")
    analyser = FrameAnalyser(classifier, finder)
    tracker = tracking.Tracker(classifier.threshold)
    started = time.perf_counter()
    timeline = []  # (t, with_mask, without_mask) per analysed frame: small, for the chart
    analysed = decoded = 0
    shown, cancelled, broken, writer = [], False, None, None
    analyse_s = 0.0
    with open_video(source, max_seconds=max_seconds) as (container, stream, info):
        size = work_size(info.width, info.height, max_side)
        scale = info.width / size[0]
        try:
            for index, t, rgb in frames(container, stream, size):
                if writer is None and out is not None:
                    writer = _Writer(out, (rgb.shape[1], rgb.shape[0]), info.fps)
                decoded += 1
                if index % every == 0:
                    a0 = time.perf_counter()
                    found = tracker.update(t, analyser(rgb))
                    analyse_s += time.perf_counter() - a0
                    analysed += 1
                    shown = found
                    timeline.append(
                        (
                            round(t, 3),
                            sum(f["label"] == tracking.MASK for f in found),
                            sum(f["label"] == tracking.NO_MASK for f in found),
                        )
                    )
                    if on_frame is not None:
                        on_frame(
                            {
                                "frame": index,
                                "t": round(t, 3),
                                "faces": [{**f, "box": [round(v * scale) for v in f["box"]]} for f in found],
                            }
                        )
                    if progress is not None:
                        progress(index + 1, max(info.frames, index + 1), time.perf_counter() - started)
                    if cancel is not None and cancel():
                        cancelled = True
                if writer is not None:
                    writer.write(draw(rgb, shown) if shown else rgb)
                if cancelled:
                    break
        except _Broken as exc:
            broken = f"the video breaks off after {exc.frames_read} frames ({exc.reason})"
        except BaseException:
            if writer is not None:
                writer.close(keep=False)
            raise
        video_s = decoded / info.fps if info.fps else 0.0
        if not broken and not cancelled and info.duration_s and video_s < 0.9 * info.duration_s - 0.5:
            broken = (
                f"the video ends after {fmt_duration(video_s)} of the {fmt_duration(info.duration_s)} its "
                "header announces (cut short?)"
            )
        if decoded == 0:
            if writer is not None:
                writer.close(keep=False)
            raise VideoError(
                f"{info.name}: the video has no frames that can be decoded"
                + (f" ({broken.split('(', 1)[-1]}" if broken else "")
            )
        if writer is not None:
            writer.close(keep=True)
    elapsed = time.perf_counter() - started
    counts = tracker.counts()
    return {
        "video": asdict(info),
        "every": every,
        "finder": analyser.finder,
        "work_size": list(size),
        "frames_decoded": decoded,
        "frames_analysed": analysed,
        "cancelled": cancelled,
        "broken": broken,
        "elapsed_s": round(elapsed, 3),
        "analysed_fps": round(analysed / elapsed, 2) if elapsed else None,
        "ms_per_analysed_frame": round(1000 * analyse_s / analysed, 1) if analysed else None,
        "speed": round(video_s / elapsed, 2) if elapsed else None,  # seconds of video a second
        "counts": counts,
        "sentence": tracking.people_sentence(counts),
        "people": tracker.people(),
        "timeline": [{"t": t, tracking.MASK: a, tracking.NO_MASK: b} for t, a, b in timeline],
    }


def time_left(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the pace so far (None until there is a pace)."""
    if done <= 0 or elapsed <= 0 or total <= done:
        return None if done <= 0 else 0.0
    return elapsed / done * (total - done)


def detections_csv(records) -> str:
    """Analysed frames' records -> CSV text, one row per face (frame, t, track, label, p_mask, box)."""
    rows = ["frame,t,track,label,p_mask,xmin,ymin,xmax,ymax"]
    for r in records:
        for f in r["faces"]:
            rows.append(
                f"{r['frame']},{r['t']},{f.get('track', '')},{f['label']},{f['p_mask']},"
                + ",".join(str(v) for v in f["box"])
            )
    return "\n".join(rows) + "\n"


def detections_json(summary: dict, records) -> str:
    return json.dumps({**summary, "frames": list(records)})


# ---------------------------------------------------------------- a live camera


class LiveAnalyser:
    """A camera's frames in, the same frames out with the newest result drawn on each at once.

    Each frame offered replaces the one waiting for the worker thread, which analyses the newest frame
    only: the picture keeps the camera's pace whatever the finder costs, and a result is at most one
    analysis old. `slot` (a context manager, e.g. maskdet.access.classification_slot) is held while the
    worker runs; the worker stops after IDLE_S seconds without frames (a closed tab), freeing it.
    """

    IDLE_S = 5.0
    KEEP = 30  # frames of history for the rates and latency

    def __init__(self, classifier, finder: str = DEFAULT_FINDER, slot=None, clock=time.monotonic):
        self.analyse = FrameAnalyser(classifier, finder)
        self.tracker = tracking.Tracker(classifier.threshold)
        self._slot = slot
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: queue.Queue = queue.Queue(maxsize=1)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False  # stop() was called: frames pass through, no new worker starts
        self._result: list[dict] = []
        self._result_t = None  # arrival time of the frame the result belongs to
        self._result_drawn = True
        self._arrivals: list[float] = []
        self._analysed: list[float] = []
        self._latencies: list[float] = []
        self._analysis_s: list[float] = []  # find + classify + track, per analysed frame
        self._counts = self.tracker.counts()
        self.error: str | None = None
        self.frames_in = self.frames_analysed = 0

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One camera frame -> the frame to show (the newest result drawn on it)."""
        now = self._clock()
        with self._lock:
            self.frames_in += 1
            self._arrivals = (self._arrivals + [now])[-self.KEEP :]
            result, error = self._result, self.error
            if not self._result_drawn and self._result_t is not None:
                self._latencies = (self._latencies + [now - self._result_t])[-self.KEEP :]
                self._result_drawn = True
        if error is None and not self._closed:
            self._offer(rgb, now)
        return draw(rgb, result, note=error) if (result or error) else rgb

    def _offer(self, rgb: np.ndarray, t: float) -> None:
        try:  # the frame waiting, if any, is stale now: replace it
            self._waiting.get_nowait()
        except queue.Empty:
            pass
        try:
            self._waiting.put_nowait((rgb, t))
        except queue.Full:
            pass
        if self._worker is None or not self._worker.is_alive():
            self._stop.clear()
            self._worker = threading.Thread(target=self._work, name="maskdet-live", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        try:
            with self._slot() if self._slot is not None else nullcontext():
                while not self._stop.is_set():
                    try:
                        waiting = self._waiting.get(timeout=self.IDLE_S)
                    except queue.Empty:
                        return  # no frames for a while: the stream ended
                    if waiting is None:  # stop() asked
                        return
                    rgb, t = waiting
                    picked = self._clock()
                    found = self.tracker.update(t, self.analyse(rgb))
                    counts = self.tracker.counts()
                    with self._lock:
                        done = self._clock()
                        self._result, self._result_t, self._result_drawn = found, t, False
                        self._counts = counts
                        self.frames_analysed += 1
                        self._analysed = (self._analysed + [done])[-self.KEEP :]
                        self._analysis_s = (self._analysis_s + [done - picked])[-self.KEEP :]
        except Exception as exc:  # a busy server (the slot), a failing model: said on the picture and page
            with self._lock:
                self.error = str(exc) or type(exc).__name__
                self._result = []

    def stop(self, wait: bool = False) -> None:
        """End the worker now (it gives its slot back) for good; wait: until it has ended."""
        self._closed = True
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            self._waiting.get_nowait()
        with contextlib.suppress(queue.Full):
            self._waiting.put_nowait(None)
        if wait and self._worker is not None:
            self._worker.join(timeout=self.IDLE_S + 1)

    @staticmethod
    def _rate(times: list[float]) -> float | None:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None

    @staticmethod
    def _median_ms(values: list[float]) -> int | None:
        return round(1000 * sorted(values)[len(values) // 2]) if values else None

    def stats(self) -> dict:
        """Frames a second in and analysed, the median latency from a frame to its boxes drawn and the
        median time one analysis takes (ms), the faces in view now by label, the people counted so far, and
        an error if the worker stopped."""
        with self._lock:
            now_faces = list(self._result)
            stats = {
                "fps": self._rate(self._arrivals),
                "analysed_fps": self._rate(self._analysed),
                "latency_ms": self._median_ms(self._latencies),
                "analysis_ms": self._median_ms(self._analysis_s),
                "frames_in": self.frames_in,
                "frames_analysed": self.frames_analysed,
                "error": self.error,
                "counts": self._counts,
            }
        stats["now"] = {
            tracking.MASK: sum(f["label"] == tracking.MASK for f in now_faces),
            tracking.NO_MASK: sum(f["label"] == tracking.NO_MASK for f in now_faces),
        }
        stats["sentence"] = tracking.people_sentence(stats["counts"])
        return stats


def import_webrtc() -> None:
    """Import aiortc's SRTP library (pylibsrtp) so that it works beside TensorFlow; call it before importing
    aiortc or streamlit-webrtc. pylibsrtp carries its own OpenSSL, and TensorFlow's BoringSSL symbols, loaded
    first and global, took the place of OpenSSL's in it: the process died (SIGSEGV in srtp_init) as it was
    imported after TensorFlow. Bound "deep", the library uses its own symbols first, whatever came before."""
    import os
    import sys

    if "pylibsrtp" in sys.modules or not hasattr(os, "RTLD_DEEPBIND"):
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_DEEPBIND)
    try:
        import pylibsrtp  # noqa: F401
    finally:
        sys.setdlopenflags(flags)


# ---------------------------------------------------------------- the command line's predict-video


def predict(
    path,
    model,
    every: int = DEFAULT_EVERY,
    out=None,
    csv=None,
    as_json: bool = False,
    finder: str = DEFAULT_FINDER,
    threshold: float = config.DEFAULT_THRESHOLD,
    stdout=None,
    stderr=None,
) -> int:
    """`python -m maskdet predict-video`: analyse one file, print its faces and people, write the annotated
    mp4 and the CSV. With as_json, one JSON line per analysed frame ({"frame", "t", "faces"}) and a last
    line {"summary": {...}}; else a line per person and the summary. Progress with time left goes to
    stderr. Returns the exit status: 0, or 2 for a file that is not a usable video (one sentence)."""
    import sys

    from . import infer

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        info = probe(path)  # a bad file is told before the model loads
    except VideoError as exc:
        print(f"error: {exc}", file=stderr)
        return 2
    print(
        f"{path}: {info.describe()}; analysing " + ("every frame" if every == 1 else f"one frame in {every}"),
        file=stderr,
        flush=True,
    )
    classifier = infer.Classifier.load(model, threshold, lite="convert")

    shown = [0.0]

    def progress(done, total, elapsed):  # twice a second at most: a terminal is slow to scroll
        if elapsed - shown[0] < 0.5 and done < total:
            return
        shown[0] = elapsed
        left = time_left(done, total, elapsed)
        print(
            f"\rframes {done}/{total} ({done / max(total, 1):.0%})"
            + (f", {fmt_duration(left)} left   " if left is not None else "   "),
            end="",
            file=stderr,
            flush=True,
        )

    try:
        with contextlib.ExitStack() as stack:  # the CSV is written aside: a failed analysis leaves none
            csv_file = None
            if csv:
                csv_file = stack.enter_context(open(stack.enter_context(files.written_aside(csv)), "w"))
                csv_file.write(detections_csv([]))

            def on_frame(record):
                if as_json:
                    print(json.dumps(record), file=stdout, flush=True)
                if csv_file:
                    csv_file.write(detections_csv([record]).split("\n", 1)[1])

            summary = analyse(
                path, classifier, every=every, out=out, finder=finder, progress=progress, on_frame=on_frame
            )
    except VideoError as exc:
        print(f"\nerror: {exc}", file=stderr)
        return 2
    print(file=stderr)
    if summary["broken"]:
        print(f"warning: {summary['broken']}; analysed up to there", file=stderr)
    if out:
        summary["out"] = str(out)
    if as_json:
        print(json.dumps({"summary": summary}), file=stdout, flush=True)
        return 0
    for p in summary["people"]:
        print(
            f"person #{p['track']}: {p['label']} ({p['frames_with_mask']} of {p['frames']} frames with mask, "
            f"mean p_mask {p['p_mask']:.3f}), seen {fmt_duration(p['first_s'])}-{fmt_duration(p['last_s'])}",
            file=stdout,
        )
    print(f"{path}: {summary['sentence']}", file=stdout)
    print(
        f"{summary['frames_analysed']} of {summary['frames_decoded']} frames analysed at "
        f"{summary['work_size'][0]}x{summary['work_size'][1]} in {summary['elapsed_s']:.1f} s "
        f"({summary['analysed_fps']} analysed frames/s, {summary['speed']}x real time)"
        + (f"; annotated video: {out}" if out else "")
        + (f"; detections: {csv}" if csv else ""),
        file=stdout,
    )
    return 0
