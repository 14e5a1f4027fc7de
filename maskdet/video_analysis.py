"""A video file analysed: `analyse(source, classifier, every=N, out=...)` streams it, one frame decoded at a
time, every N-th frame's faces found and classified in one batch (maskdet/frame_faces.py), each face joined to a
track (maskdet/tracking.py), every frame written to an annotated H.264 mp4 with the newest boxes, progress and
cancel through callbacks. Its summary says how many people were seen and with which label; its frames'
records go out as CSV or JSON.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import config, files, frame_faces, tracking, video


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
    every: int = config.DEFAULT_EVERY,
    out=None,
    finder: str = config.DEFAULT_VIDEO_FINDER,
    progress=None,
    cancel=None,
    on_frame=None,
    max_seconds: float | None = None,
    max_side: int = video.WORK_SIDE,
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
    analyser = frame_faces.FrameAnalyser(classifier, finder)
    tracker = tracking.Tracker(classifier.threshold)
    started = time.perf_counter()
    timeline = []  # (t, with_mask, without_mask) per analysed frame: small, for the chart
    analysed = decoded = 0
    shown, cancelled, broken, writer = [], False, None, None
    analyse_s = 0.0
    with video.open_video(source, max_seconds=max_seconds) as (container, stream, info):
        size = video.work_size(info.width, info.height, max_side)
        scale = info.width / size[0]
        try:
            for index, t, rgb in video.frames(container, stream, size):
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
                    writer.write(frame_faces.draw(rgb, shown) if shown else rgb)
                if cancelled:
                    break
        except video.Broken as exc:
            broken = f"the video breaks off after {exc.frames_read} frames ({exc.reason})"
        except BaseException:
            if writer is not None:
                writer.close(keep=False)
            raise
        video_s = decoded / info.fps if info.fps else 0.0
        if not broken and not cancelled and info.duration_s and video_s < 0.9 * info.duration_s - 0.5:
            broken = (
                f"the video ends after {video.fmt_duration(video_s)} of the {video.fmt_duration(info.duration_s)} its "
                "header announces (cut short?)"
            )
        if decoded == 0:
            if writer is not None:
                writer.close(keep=False)
            raise video.VideoError(
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
