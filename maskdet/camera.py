"""A live camera: each frame gets the newest result drawn on it at once and is offered to a worker thread
that analyses the newest frame only (maskdet/frame_faces.py), so the picture never waits for the finder;
a tracker (maskdet/tracking.py) counts people, not frames. And WebRTC's import beside TensorFlow.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from contextlib import nullcontext

import numpy as np

from . import config, frame_faces, tracking


class LiveAnalyser:
    """A camera's frames in, the same frames out with the newest result drawn on each at once.

    Each frame offered replaces the one waiting for the worker thread, which analyses the newest frame
    only: the picture keeps the camera's pace whatever the finder costs, and a result is at most one
    analysis old. `slot` (a context manager, e.g. maskdet.access.classification_slot) is held while the
    worker runs; the worker stops after IDLE_S seconds without frames (a closed tab), freeing it.
    """

    IDLE_S = 5.0
    KEEP = 30  # frames of history for the rates and latency

    def __init__(self, classifier, finder: str = config.DEFAULT_VIDEO_FINDER, slot=None, clock=time.monotonic):
        self.analyse = frame_faces.FrameAnalyser(classifier, finder)
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
        return frame_faces.draw(rgb, result, note=error) if (result or error) else rgb

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
