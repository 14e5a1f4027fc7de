"""Video speed and memory, side by side in one run (issue 15's goals):

- files: analysed frames a second and real-time factor of `video_analysis.analyse` on a 640x480 25 fps clip made of
  face-mask-scenes photos, per stride and finder, with the annotated mp4 written;
- live: `camera.LiveAnalyser` fed that clip at the camera's pace (30 fps), as the Video page's WebRTC
  callback feeds it: frames a second out, analysed a second, latency from a frame to its boxes drawn,
  time the callback takes; then the same behind a real WebRTC loop (aiortc at both ends, VP8 both ways,
  in this process); with --browser also the whole path (Chromium's fake camera -> WebRTC -> the page ->
  back), read from the page's own readout;
- memory: `python -m maskdet predict-video --every 2 --out` on a 10-minute clip, its resident memory
  sampled every second (peak, and at each tenth of the run);
- counting: single-scene clips of the first N scenes with faces of 60 px and more: how often the people
  counted and their labels are exactly the photo's annotated faces.

    python benchmarks/bench_video.py [--seconds 30] [--memory-minutes 10] [--count-scenes 60] [--browser]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from clips import SCENES, pick_scenes, write_clip
from maskdet import camera, config, infer, video, video_analysis

PROJECT = Path(__file__).resolve().parent.parent


def files_speed(clf, clip: Path, runs) -> list[dict]:
    rows = []
    for finder, every in runs:
        with tempfile.TemporaryDirectory() as tmp:
            s = video_analysis.analyse(clip, clf, every=every, finder=finder, out=Path(tmp) / "annotated.mp4")
        rows.append(
            {
                "finder": finder,
                "every": every,
                "analysed_fps": s["analysed_fps"],
                "ms_per_analysed_frame": s["ms_per_analysed_frame"],
                "speed": s["speed"],
                "frames_per_s": round(s["frames_decoded"] / s["elapsed_s"], 1),
                "people": s["sentence"],
            }
        )
        print(
            f"  file  finder {finder:9s} every {every}: {rows[-1]['analysed_fps']:5.1f} analysed frames/s "
            f"({rows[-1]['ms_per_analysed_frame']} ms find+classify each), {rows[-1]['frames_per_s']} frames/s "
            f"decoded+drawn+encoded, {s['speed']}x real time; {s['sentence']}",
            flush=True,
        )
    return rows


def live_speed(clf, clip: Path, finder: str, seconds: float, fps: float = 30.0) -> dict:
    """Frames of the clip offered at `fps` in real time, as the WebRTC callback offers them."""
    import av

    frames = []
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            frames.append(f.to_ndarray(format="rgb24"))
            if i >= 150:  # 6 s of the clip, looped
                break
    live = camera.LiveAnalyser(clf, finder)
    took, start = [], time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        due = start + n / fps
        time.sleep(max(0.0, due - time.perf_counter()))
        t = time.perf_counter()
        live(frames[n % len(frames)])
        took.append(time.perf_counter() - t)
        n += 1
    s = live.stats()
    live.stop(wait=True)
    lat = sorted(live._latencies)
    row = {
        "finder": finder,
        "fps_out": round(s["fps"], 1),
        "analysed_fps": round(s["analysed_fps"] or 0, 1),
        "latency_ms_median": round(1000 * statistics.median(lat)) if lat else None,
        "latency_ms_max_last30": round(1000 * lat[-1]) if lat else None,
        "callback_ms_median": round(1000 * statistics.median(took), 1),
        "callback_ms_max": round(1000 * max(took), 1),
    }
    print(
        f"  live  finder {finder:9s}: {row['fps_out']} frames/s out, {row['analysed_fps']} analysed/s, latency "
        f"median {row['latency_ms_median']} ms (max of the last 30: {row['latency_ms_max_last30']} ms), callback "
        f"median {row['callback_ms_median']} ms, max {row['callback_ms_max']} ms",
        flush=True,
    )
    return row


def webrtc_loop(clf, clip: Path, seconds: float) -> dict:
    """The server's side of the live path without a browser: a camera track of the clip at 30 fps sent over
    aiortc to a second peer in this process, whose track runs each frame through LiveAnalyser (as the
    page's callback does) and sends it back; both peers encode and decode VP8 as the browser and server do."""
    import asyncio

    import av

    camera.import_webrtc()  # TensorFlow is loaded: without this, importing aiortc kills the process
    from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    frames = []
    with av.open(str(clip)) as c:
        for i, f in enumerate(c.decode(video=0)):
            frames.append(f.to_ndarray(format="rgb24"))
            if i >= 150:
                break
    live = camera.LiveAnalyser(clf)

    class Camera(VideoStreamTrack):
        n = 0

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(frames[self.n % len(frames)], format="rgb24")
            self.n += 1
            frame.pts, frame.time_base = pts, time_base
            return frame

    class Analysed(MediaStreamTrack):
        kind = "video"

        def __init__(self, track):
            super().__init__()
            self.track = track

        async def recv(self):
            frame = await self.track.recv()
            out = av.VideoFrame.from_ndarray(live(frame.to_ndarray(format="rgb24")), format="rgb24")
            out.pts, out.time_base = frame.pts, frame.time_base
            return out

    async def run():
        browser, server = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
        browser.addTransceiver(Camera(), direction="sendrecv")
        back = {"n": 0}
        server.on("track", lambda track: server.addTrack(Analysed(track)))

        @browser.on("track")
        def on_back(track):
            async def sink():
                with contextlib.suppress(MediaStreamError):  # the end, at close
                    while True:
                        await track.recv()
                        back["n"] += 1

            asyncio.ensure_future(sink())

        await browser.setLocalDescription(await browser.createOffer())
        await server.setRemoteDescription(browser.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        await browser.setRemoteDescription(server.localDescription)
        await asyncio.sleep(5)  # connected, warmed up
        n0, t0 = back["n"], time.perf_counter()
        await asyncio.sleep(seconds)
        returned = (back["n"] - n0) / (time.perf_counter() - t0)
        stats = live.stats()
        await camera.close()
        await server.close()
        return returned, stats

    import logging

    logging.getLogger("aiortc").setLevel(logging.CRITICAL)  # the tracks' end at close is expected
    returned, s = asyncio.run(run())
    live.stop(wait=True)
    row = {
        "fps_back": round(returned, 1),
        "analysed_fps": round(s["analysed_fps"] or 0, 1),
        "latency_ms": s["latency_ms"],
        "analysis_ms": s["analysis_ms"],
    }
    print(
        f"  webrtc loop (aiortc both ends, VP8, no browser): {row['fps_back']} annotated frames/s back, "
        f"{row['analysed_fps']} analysed/s, latency {row['latency_ms']} ms, one analysis {row['analysis_ms']} ms",
        flush=True,
    )
    return row


def browser_speed(seconds: float) -> dict:
    """The Video page in Chromium with a fake camera playing a scene clip: the page's own readout."""
    import re

    from playwright.sync_api import sync_playwright

    from appserver import CHROMIUM, CHROMIUM_FLAGS, AppServer

    with tempfile.TemporaryDirectory() as tmp:
        y4m = write_clip(
            pick_scenes(SCENES, n=2, min_side=60), Path(tmp) / "camera.y4m", seconds_each=4, fps=30, gap_s=0.5
        )
        flags = CHROMIUM_FLAGS + [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
        ]
        with AppServer() as server, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)
            page = browser.new_context(permissions=["camera"]).new_page()
            page.goto(server.url + "/video")
            component = page.frame_locator("iframe[title='streamlit_webrtc.component.webrtc_streamer']")
            component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=180_000)
            samples, end = [], time.time() + 180  # the first readout (the connection, the first frames), then
            while time.time() < end:  # `seconds` of readouts
                time.sleep(1.0)
                m = dict(x.split("\n\n") for x in page.locator("[data-testid=stMetric]").all_inner_texts())
                if all(m.get(k, "–") != "–" for k in ("Frames/s", "Analysed/s", "Latency")):
                    if not samples:
                        end = time.time() + seconds
                    said = page.get_by_text(re.compile(r"found and classified in \d+ ms")).all_inner_texts()
                    analysis = int(re.search(r"in (\d+) ms", said[0]).group(1)) if said else 0
                    samples.append(
                        (float(m["Frames/s"]), float(m["Analysed/s"]), int(m["Latency"].split()[0]), analysis)
                    )
            browser.close()
    later = samples[len(samples) // 3 :] or samples  # after the start-up
    row = {
        "fps": round(statistics.median(s[0] for s in later), 1),
        "analysed_fps": round(statistics.median(s[1] for s in later), 1),
        "latency_ms": round(statistics.median(s[2] for s in later)),
        "analysis_ms": round(statistics.median(s[3] for s in later)),
        "samples": len(later),
    }
    print(
        f"  browser (Chromium fake camera 640x480 30 fps -> WebRTC -> page -> back): {row['fps']} frames/s, "
        f"{row['analysed_fps']} analysed/s, latency {row['latency_ms']} ms, one analysis {row['analysis_ms']} ms "
        f"(medians of {len(later)} readouts)",
        flush=True,
    )
    return row


def memory(minutes: float, tmp: Path) -> dict:
    scenes = pick_scenes(SCENES, n=8, min_side=60)
    clip = tmp / "long.mp4"
    t = time.perf_counter()
    one_round = (2.0 + 1.5) * len(scenes)
    write_clip(scenes, clip, seconds_each=2.0, fps=25, gap_s=1.5, repeat=max(1, math.ceil(minutes * 60 / one_round)))
    info = video.probe(clip)
    print(
        f"  memory: {video.fmt_duration(info.duration_s)} clip made in {time.perf_counter() - t:.0f} s; analysing "
        "it with predict-video --every 2 --out ...",
        flush=True,
    )
    command = [
        sys.executable,
        "-m",
        "maskdet",
        "predict-video",
        str(clip),
        "--every",
        "2",
        "--out",
        str(tmp / "annotated.mp4"),
    ]
    proc = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rss, started = [], time.perf_counter()
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            rss.append((time.perf_counter() - started, kb / 1024))
        except (OSError, StopIteration):
            pass
        time.sleep(1.0)
    out = proc.stdout.read()
    elapsed = time.perf_counter() - started
    tenths = [round(max(m for s, m in rss if s <= elapsed * k / 10)) for k in range(1, 11)]
    row = {
        "clip_s": info.duration_s,
        "elapsed_s": round(elapsed),
        "peak_mb": round(max(m for _, m in rss)),
        "rss_mb_by_tenth": tenths,
        "summary": out.strip().splitlines()[-1] if out.strip() else "",
    }
    print(
        f"  memory: {video.fmt_duration(info.duration_s)} of video in {elapsed:.0f} s; resident memory peak "
        f"{row['peak_mb']} MB; highest so far at each tenth of the run: {tenths} MB",
        flush=True,
    )
    print(f"          {row['summary']}", flush=True)
    return row


def counting(clf, n: int, tmp: Path) -> dict:
    exact, people_right, people_total, detail = 0, 0, 0, []
    scenes = pick_scenes(SCENES, n=n, min_side=60)
    for scene in scenes:
        clip = write_clip([scene], tmp / "one.mp4", seconds_each=2.0, fps=25, gap_s=0.5)
        s = video_analysis.analyse(clip, clf, every=2)
        want = Counter(f.label for f in scene.faces)
        got = Counter(p["label"] for p in s["people"])
        exact += want == got
        people_total += sum(want.values())
        people_right += sum((want & got).values())
        if want != got:
            detail.append(f"{scene.image.name}: {dict(want)} -> {dict(got)}")
    row = {"scenes": len(scenes), "exact": exact, "people": people_total, "people_counted_right": people_right}
    print(
        f"  counting: {exact} of {len(scenes)} single-scene clips counted exactly (people and labels); "
        f"{people_right} of {people_total} annotated people counted with their label",
        flush=True,
    )
    for d in detail:
        print(f"    {d}")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30, help="length of the speed clip, and of the live run")
    ap.add_argument("--memory-minutes", type=float, default=10, help="length of the memory clip (0: skip)")
    ap.add_argument("--count-scenes", type=int, default=60, help="single-scene clips for counting (0: skip)")
    ap.add_argument("--browser", action="store_true", help="also the whole live path in Chromium")
    ap.add_argument("--parts", default="files,live,webrtc,browser,counting,memory", help="which parts to run")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    print(
        f"bench_video: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start; {time.strftime('%Y-%m-%d %H:%M')}",
        flush=True,
    )
    clf = infer.Classifier.load(config.DEFAULT_MODEL, lite="convert")
    print(f"  model {config.DEFAULT_MODEL.name} ({clf.engine})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        tmp = Path(tmp)
        scenes = pick_scenes(SCENES, n=8, min_side=60)
        clip = write_clip(
            scenes,
            tmp / "clip.mp4",
            seconds_each=2.0,
            fps=25,
            gap_s=1.5,
            repeat=max(1, round(a.seconds / (3.5 * len(scenes)))),
        )
        info = video.probe(clip)
        print(
            f"  clip: {info.describe()}, {len(scenes)} scenes of face-mask-scenes (2 s each + 1.5 s grey)", flush=True
        )
        np.random.seed(0)
        if "files" in parts:
            files_speed(clf, clip, [("fast", 1), ("fast", 2), ("fast", 3), ("balanced", 2), ("thorough", 2)])
        if "live" in parts:
            for finder in ("fast", "balanced"):
                live_speed(clf, clip, finder, seconds=min(a.seconds, 20))
        if "webrtc" in parts:
            webrtc_loop(clf, clip, min(a.seconds, 20))
        if a.browser and "browser" in parts:
            browser_speed(min(a.seconds, 30))
        if a.count_scenes and "counting" in parts:
            counting(clf, a.count_scenes, tmp)
        if a.memory_minutes and "memory" in parts:
            memory(a.memory_minutes, tmp)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
