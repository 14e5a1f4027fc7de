"""Video: files and the live camera through find-and-classify, people counted once, bad videos explained.

The clips are made here with PyAV: real scene photos of face-mask-scenes held with a slow pan and a grey
gap after each (benchmarks/clips.py), so the people in a clip and their labels are the photos' annotated
faces. The scenes of CLIP_SCENES are ones whose every face the fast finder finds and the shipped model
labels right in a clip of their own (52 of the first 60 scenes with faces of 60 px and more are, see
docs/video.md): these tests check the video path (decoding, tracking, counting, writing), not the finder.
"""

import json
import re
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import PROJECT, SCENES, cli, need_shared
from maskdet import camera, config, frame_faces, tracking, video, video_analysis

MASK, NO_MASK = config.CLASS_NAMES
# 7 people: 4 with a mask, 3 without (maksssksksss499 holds one of each)
CLIP_SCENES = (
    "maksssksksss106.jpg",
    "maksssksksss248.jpg",
    "maksssksksss140.jpg",
    "maksssksksss499.jpg",
    "maksssksksss343.jpg",
)


# ---------------------------------------------------------------- helpers


class StubClassifier:
    """Says P(mask) = p for every face, after `delay` seconds (no TensorFlow)."""

    threshold = config.DEFAULT_THRESHOLD

    def __init__(self, p=0.9, delay=0.0):
        self.p, self.delay = p, delay

    def probs(self, pixels):
        time.sleep(self.delay)
        return np.full(len(pixels), self.p, np.float32)

    def label(self, p):
        return MASK if p >= self.threshold else NO_MASK


def synthetic_clip(path, frames=30, size=(96, 64), fps=25, codec="libx264", fmt="mp4", options=None):
    """A small clip of moving noise (no faces), written with PyAV."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(frames):
            noise = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(noise, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def face(box, label=MASK, p=None):
    return {"box": box, "label": label, "p_mask": p if p is not None else (0.9 if label == MASK else 0.1)}


@pytest.fixture(scope="module")
def scene_clip(tmp_path_factory):
    """The CLIP_SCENES clip as H.264 mp4 at 640x480 and 25 fps: 5 scenes of 2 s, each followed by 1.5 s of grey."""
    from clips import pick_scenes, write_clip

    need_shared(SCENES)
    scenes = pick_scenes(SCENES, n=len(CLIP_SCENES), min_side=60, names=CLIP_SCENES)
    assert [s.image.name for s in scenes] == sorted(CLIP_SCENES)
    path = tmp_path_factory.mktemp("clips") / "doorway.mp4"
    return write_clip(scenes, path, seconds_each=2.0, fps=25, gap_s=1.5)


# ---------------------------------------------------------------- counting people, not frames


def test_a_person_seen_in_many_frames_counts_once_with_the_label_most_frames_gave():
    tracker = tracking.Tracker()
    for i in range(10):  # walking right 12 px an analysed frame; 3 of 10 frames say "no mask"
        label = NO_MASK if i in (2, 5, 8) else MASK
        out = tracker.update(i * 0.08, [face([100 + 12 * i, 100, 180 + 12 * i, 190], label)])
        assert out[0]["track"] == 1
    assert tracker.counts() == {"people": 1, MASK: 1, NO_MASK: 0}
    (person,) = tracker.people()
    assert (person["frames"], person["frames_with_mask"], person["label"]) == (10, 7, MASK)
    assert tracking.people_sentence(tracker.counts()) == "1 person seen: 1 with mask, 0 without"


def test_two_people_side_by_side_stay_two_tracks_and_a_fast_walker_keeps_his():
    tracker = tracking.Tracker()
    for i in range(6):
        left = face([50 + 40 * i, 100, 130 + 40 * i, 190], MASK)  # 40 px a look: half a face, no overlap left
        right = face([400, 100, 480, 190], NO_MASK)
        tracks = [f["track"] for f in tracker.update(i * 0.2, [left, right])]
        assert tracks == [1, 2]
    assert tracker.counts() == {"people": 2, MASK: 1, NO_MASK: 1}


def test_a_one_frame_false_box_is_no_person_and_a_person_who_left_and_came_back_counts_again():
    tracker = tracking.Tracker()
    tracker.update(0.0, [face([10, 10, 40, 40], NO_MASK)])  # a false box, seen once
    for i in range(5):
        tracker.update(1.0 + i * 0.1, [face([200, 100, 280, 190])])
    for i in range(5):  # 2 s later (longer than MAX_GAP_S), at the same place
        tracker.update(3.5 + i * 0.1, [face([200, 100, 280, 190], NO_MASK)])
    assert [p["track"] for p in tracker.people()] == [2, 3]
    assert tracker.counts() == {"people": 2, MASK: 1, NO_MASK: 1}
    assert tracker.active and len(tracker.ended) == 1  # ended tracks that were no person are not kept


# ---------------------------------------------------------------- bad videos: one sentence, nothing left


def _bad_videos(tmp):
    (tmp / "notes.mp4").write_text("these are my notes, not a video")
    (tmp / "empty.webm").write_bytes(b"")
    whole = synthetic_clip(tmp / "whole.mp4", frames=40).read_bytes()
    (tmp / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the index (moov) comes last: cut off
    blank = bytearray(whole)  # its picture stream intact, every frame's data zeroed: no frame decodes
    start = blank.index(b"mdat") + 4
    blank[start : start + 4000] = bytes(len(blank[start : start + 4000]))
    (tmp / "zero.mp4").write_bytes(bytes(blank))
    synthetic_clip(tmp / "huge.avi", frames=1, size=(4352, 2448), codec="mjpeg", fmt="avi")
    with av.open(str(tmp / "sound.mp4"), "w", format="mp4") as out:  # audio only: what a voice memo is
        s = out.add_stream("aac", rate=16000)
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        silence.sample_rate = 16000
        for packet in [*s.encode(silence), *s.encode(None)]:
            out.mux(packet)
    with av.open(str(tmp / "hour.mp4"), "w", format="mp4") as out:  # two frames an hour apart
        s = out.add_stream("libx264", rate=1)
        s.width, s.height = 64, 64
        s.codec_context.time_base = Fraction(1, 1)
        for pts in (0, 3600):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            frame.pts = pts
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    return {
        "notes.mp4": "notes.mp4: not a video file (mp4, mov, webm, mkv or avi are read)",
        "empty.webm": "empty.webm: the file is empty (0 bytes)",
        "truncated.mp4": "truncated.mp4: the mp4 file is damaged or truncated and cannot be read",
        "zero.mp4": "zero.mp4: the video has no frames that can be decoded",
        "huge.avi": "huge.avi: 4352x2448 is too large a picture",
        "sound.mp4": "sound.mp4: the file holds no picture (audio only)",
        "hour.mp4": "hour.mp4: the video is 1:00:01 long; this server analyses up to 15:00",
    }


def test_every_kind_of_bad_video_gets_one_sentence(tmp_path):
    cases = _bad_videos(tmp_path)
    before = set(tmp_path.iterdir())
    for name, message in cases.items():
        with pytest.raises(video.VideoError) as caught:
            kw = {"max_seconds": config.VIDEO_MAX_SECONDS} if name == "hour.mp4" else {}
            video_analysis.analyse(tmp_path / name, StubClassifier(), out=tmp_path / f"{name}-annotated.mp4", **kw)
        assert str(caught.value).startswith(message), (name, str(caught.value))
        assert "\n" not in str(caught.value)
    assert set(tmp_path.iterdir()) == before  # nothing written: no annotated video, no file aside


def test_the_command_line_refuses_a_bad_video_in_one_line_before_loading_a_model(tmp_path):
    _bad_videos(tmp_path)
    before = set(tmp_path.iterdir())
    for name in ("notes.mp4", "truncated.mp4", "sound.mp4", "huge.avi"):
        proc = cli(
            "predict-video", tmp_path / name, "--out", tmp_path / "out.mp4", "--csv", tmp_path / "out.csv", timeout=120
        )
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {name}: ") and "Traceback" not in proc.stderr
    assert set(tmp_path.iterdir()) == before  # no output, no CSV, nothing aside


def test_a_video_cut_short_is_analysed_up_to_the_break(tmp_path):
    whole = synthetic_clip(tmp_path / "whole.webm", frames=100, codec="libvpx", fmt="webm").read_bytes()
    (tmp_path / "cut.webm").write_bytes(whole[: len(whole) // 2])
    summary = video_analysis.analyse(tmp_path / "cut.webm", StubClassifier(), every=1, out=tmp_path / "annotated.mp4")
    assert 10 < summary["frames_decoded"] < 100 and summary["frames_analysed"] == summary["frames_decoded"]
    assert summary["broken"] and "header announces" in summary["broken"] or "breaks off" in summary["broken"]
    with av.open(str(tmp_path / "annotated.mp4")) as got:
        assert got.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in got.decode(video=0)) == summary["frames_decoded"]


def test_a_cancelled_analysis_stops_at_once_and_keeps_what_it_did(tmp_path):
    clip = synthetic_clip(tmp_path / "clip.mp4", frames=60)
    seen = []
    summary = video_analysis.analyse(
        clip,
        StubClassifier(),
        every=2,
        out=tmp_path / "annotated.mp4",
        progress=lambda done, total, elapsed: seen.append((done, total)),
        cancel=lambda: len(seen) >= 5,
    )
    assert summary["cancelled"] and summary["frames_analysed"] == 5 and summary["frames_decoded"] == 9
    assert seen[-1] == (9, 60) and not summary["broken"]
    with av.open(str(tmp_path / "annotated.mp4")) as got:  # a whole mp4 of the frames up to there
        assert sum(1 for _ in got.decode(video=0)) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "clip.mp4"]


def test_a_full_hd_video_is_analysed_at_720p_and_its_boxes_given_in_its_own_pixels(tmp_path, monkeypatch):
    clip = synthetic_clip(tmp_path / "hd.mp4", frames=3, size=(1920, 1080))
    monkeypatch.setattr(
        frame_faces.FrameAnalyser,
        "find",
        lambda self, picture: [((100, 100, 200, 200), 0.9)] if picture.size == (1280, 720) else [],
    )
    records = []
    summary = video_analysis.analyse(clip, StubClassifier(), every=1, on_frame=records.append)
    assert summary["work_size"] == [1280, 720] and len(records) == 3
    assert records[0]["faces"][0]["box"] == [150, 150, 300, 300]
    assert summary["counts"] == {"people": 1, MASK: 1, NO_MASK: 0}


def test_a_video_filmed_upright_on_a_phone_is_analysed_upright(tmp_path):
    with av.open(str(tmp_path / "upright.mp4"), "w", format="mp4") as out:  # stored 64x32, shown turned
        s = out.add_stream("libx264", rate=25)
        s.width, s.height = 64, 32
        s.set_display_rotation(90)  # a quarter turn counterclockwise to show it (PyAV's sign)
        for i in range(3):
            stored = np.zeros((32, 64, 3), np.uint8)
            stored[:, :8] = 255  # a white band on the stored picture's left
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    with video.open_video(tmp_path / "upright.mp4") as (container, stream, info):
        _, _, shown = next(video.frames(container, stream, video.work_size(info.width, info.height)))
    assert shown.shape == (64, 32, 3)  # upright: taller than wide
    assert shown[-8:].mean() > 200 and shown[:-12].mean() < 30  # the left band turned to the bottom


def test_containers_are_told_by_their_first_bytes_not_their_names(tmp_path):
    assert video.sniff(synthetic_clip(tmp_path / "a.mp4").read_bytes()[:64]) == "mp4"
    assert video.sniff(synthetic_clip(tmp_path / "b.mkv", codec="libvpx", fmt="webm").read_bytes()[:64]) == "webm"
    assert video.sniff(synthetic_clip(tmp_path / "c.avi", codec="mjpeg", fmt="avi").read_bytes()[:64]) == "avi"
    assert video.sniff(b"#EXTM3U\n#EXT-X-VERSION:3\nfile:///etc/passwd\n") is None  # a playlist: never opened
    assert video.sniff(b"ffconcat version 1.0\nfile /etc/passwd\n") is None


# ---------------------------------------------------------------- the live camera


def test_live_frames_come_back_at_once_while_the_newest_one_is_analysed():
    held = []

    class Slot:
        def __enter__(self):
            held.append("in")

        def __exit__(self, *exc):
            held.append("out")

    live = camera.LiveAnalyser(StubClassifier(delay=0.15), slot=Slot)
    live.IDLE_S = 0.5
    live.analyse.find = lambda picture: [((100, 100, 200, 220), 0.9)]  # one face, found at once
    frame = np.full((480, 640, 3), 90, np.uint8)
    took = []
    for _ in range(30):  # a 30 fps camera for a second
        t = time.perf_counter()
        shown = live(frame)
        took.append(time.perf_counter() - t)
        time.sleep(1 / 30)
    s = live.stats()
    # a frame never waits for the 150-ms analysis (the bounds leave room for a busy machine)
    assert sorted(took)[len(took) // 2] < 0.03 and shown.shape == frame.shape
    assert not np.array_equal(shown, frame)  # the box drawn
    assert 2 <= s["frames_analysed"] <= 12 and s["frames_in"] == 30  # newest frame only: no queue behind
    assert 150 <= s["latency_ms"] <= 600 and s["analysis_ms"] >= 150  # a queue would be ~1 s behind by now
    assert s["now"] == {MASK: 1, NO_MASK: 0} and s["counts"]["people"] == 1
    time.sleep(1.0)  # no frames: the worker ends and gives its slot back
    assert held == ["in", "out"]
    live(frame)  # frames again: a worker again, with a slot
    time.sleep(0.05)
    assert held == ["in", "out", "in"]
    live.stop(wait=True)  # Reset or another model: the worker ends at once, for good
    assert held == ["in", "out", "in", "out"] and not live._worker.is_alive()
    assert live(frame).shape == frame.shape and not live._worker.is_alive()


def test_a_busy_server_is_said_on_the_live_picture():
    from maskdet import access

    live = camera.LiveAnalyser(StubClassifier(), slot=lambda: access.classification_slot(wait=0))
    taken = [access.classification_slot(wait=0) for _ in range(access.MAX_CLASSIFICATIONS)]
    for slot in taken:
        slot.__enter__()
    try:
        frame = np.full((480, 640, 3), 90, np.uint8)
        live(frame)
        live._worker.join(2)
        assert "classifying" in live.stats()["error"]
        assert not np.array_equal(live(frame), frame)  # the message drawn on the picture
    finally:
        for slot in taken:
            slot.__exit__(None, None, None)


HANDSHAKE = """
import asyncio
import tensorflow  # first, as in the app's server
from maskdet import camera
camera.import_webrtc()
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

async def main():
    a, b = RTCPeerConnection(RTCConfiguration(iceServers=[])), RTCPeerConnection(RTCConfiguration(iceServers=[]))
    a.addTrack(VideoStreamTrack())
    got = asyncio.get_running_loop().create_future()
    b.on("track", lambda track: asyncio.ensure_future(track.recv()).add_done_callback(
        lambda f: got.done() or got.set_result(f.result())))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    frame = await asyncio.wait_for(got, 60)
    print("frame", frame.width, frame.height, flush=True)
    await a.close()
    await b.close()

asyncio.run(main())
"""


@pytest.mark.slow
def test_webrtc_works_in_a_process_that_loaded_tensorflow_first():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", HANDSHAKE],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=PROJECT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 and "frame 640 480" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


# ---------------------------------------------------------------- real faces: the command line and the page


@pytest.mark.shared
@pytest.mark.slow
def test_predict_video_counts_each_person_of_a_real_clip_once(scene_clip, tmp_path):
    out, csv = tmp_path / "annotated.mp4", tmp_path / "faces.csv"
    proc = cli("predict-video", scene_clip, "--every", 2, "--out", out, "--csv", csv, "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert summary["frames_decoded"] == 5 * 88  # 5 scenes of 2 s + 1.5 s of grey at 25 fps
    assert len(frames) == summary["frames_analysed"] == 220  # every 2nd
    assert summary["counts"] == {"people": 7, MASK: 4, NO_MASK: 3}
    assert summary["sentence"] == "7 people seen: 4 with mask, 3 without"
    assert all(f["track"] and f["label"] in config.CLASS_NAMES for r in frames for f in r["faces"])
    assert "left" in proc.stderr  # progress with time left
    rows = csv.read_text().splitlines()
    assert rows[0] == "frame,t,track,label,p_mask,xmin,ymin,xmax,ymax"
    assert len(rows) - 1 == sum(len(r["faces"]) for r in frames)
    with av.open(str(out)) as got:
        stream = got.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 640, 480)
        assert sum(1 for _ in got.decode(stream)) == 440
    text = cli("predict-video", scene_clip, timeout=300)
    assert "7 people seen: 4 with mask, 3 without" in text.stdout and text.stdout.count("person #") == 7


@pytest.mark.shared
@pytest.mark.slow
def test_the_video_page_analyses_an_upload_and_survives_a_bad_one(scene_clip):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(PROJECT / "streamlit_app.py"), default_timeout=300)
    at.switch_page("app_pages/video.py")
    at.session_state["model_path"] = str(config.DEFAULT_MODEL)
    at.session_state["video_source"] = "Video file"  # the live component needs a browser
    at.run()
    assert not at.exception
    at.file_uploader(key="video_upload").set_value([("notes.mp4", b"not a video", "video/mp4")]).run()
    next(b for b in at.button if b.key == "video_go").click().run()
    assert [e.value for e in at.error] == ["notes.mp4: not a video file (mp4, mov, webm, mkv or avi are read)"]
    at.file_uploader(key="video_upload").set_value([("doorway.mp4", scene_clip.read_bytes(), "video/mp4")]).run()
    next(b for b in at.button if b.key == "video_go").click().run()
    assert not at.exception and not at.error
    assert "### 7 people seen: 4 with mask, 3 without" in [m.value for m in at.markdown]
    assert [b.label for b in at.get("download_button")] == [
        "Annotated video (mp4)",
        "Detections (CSV)",
        "Detections (JSON)",
    ]
    assert len(at.get("vega_lite_chart")) == 1 and len(at.get("video")) == 1
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.mark.slow
def test_a_classify_only_server_serves_the_video_page_too(monkeypatch):
    from streamlit import config as st_config
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv("MASKDET_TOKEN", raising=False)
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")  # shared without a token: classify-only
    try:
        at = AppTest.from_file(str(PROJECT / "streamlit_app.py"), default_timeout=300)
        at.switch_page("app_pages/video.py")
        at.session_state["video_source"] = "Video file"
        at.run()
    finally:
        st_config.set_option("server.address", before)
    assert not at.exception
    assert [t.value for t in at.title] == ["Video"]
    limit = min(config.VIDEO_UPLOAD_MAX_MB, st_config.get_option("server.maxUploadSize"))
    assert f"up to {limit} MB" in " ".join(c.value for c in at.caption)


@pytest.fixture
def fake_camera_browser(tmp_path):
    """Chromium whose camera plays the CLIP_SCENES clip (looped), as a y4m file."""
    from appserver import CHROMIUM_FLAGS
    from clips import pick_scenes, write_clip
    from conftest import launch_browser

    need_shared(SCENES)
    scenes = pick_scenes(SCENES, n=2, min_side=60, names=CLIP_SCENES[3:])
    y4m = write_clip(scenes, tmp_path / "camera.y4m", seconds_each=3.0, fps=15, gap_s=0.5)
    yield from launch_browser(
        CHROMIUM_FLAGS
        + [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
        ]
    )


@pytest.mark.shared
@pytest.mark.slow
def test_the_live_page_sends_the_camera_back_with_boxes_and_counts(fake_camera_browser, tmp_path):
    from appserver import AppServer

    with AppServer() as server:  # listens on 127.0.0.1: no STUN or TURN server is asked for
        context = fake_camera_browser.new_context(permissions=["camera"], viewport={"width": 1280, "height": 1100})
        page = context.new_page()
        page.goto(server.url + "/video")
        component = page.frame_locator("iframe[title='streamlit_webrtc.component.webrtc_streamer']")
        component.get_by_role("button", name=re.compile("start", re.I)).click(timeout=180_000)
        moving = component.locator("video")
        deadline, seen = time.time() + 90, {}
        while time.time() < deadline:
            metrics = dict(m.split("\n\n") for m in page.locator("[data-testid=stMetric]").all_inner_texts())
            if metrics:
                seen[MASK] = max(seen.get(MASK, 0), int(metrics["With mask now"]))
                seen[NO_MASK] = max(seen.get(NO_MASK, 0), int(metrics["Without mask now"]))
                rates = all(metrics[k] != "–" for k in ("Frames/s", "Analysed/s", "Latency"))
                if seen[MASK] and seen[NO_MASK] and rates:
                    break
            time.sleep(0.5)
        assert seen.get(MASK) and seen.get(NO_MASK), (seen, server.log_text()[-2000:])
        # the readout: the pace is the benchmark's business (benchmarks/bench_video.py); 2 shared cores here
        assert float(metrics["Frames/s"]) > 0 and float(metrics["Analysed/s"]) > 0, metrics
        assert int(metrics["Latency"].split()[0]) > 0, metrics
        shares = []  # the picture now and then (the camera's clip has a grey pause between its scenes)
        for i in range(12):
            picture = tmp_path / f"live-{i}.png"
            moving.screenshot(path=str(picture))
            shares.append(_label_colour_share(picture))
            time.sleep(0.5)
        assert max(shares) > 0.002, shares  # the boxes and their labels are in the returned video
        assert _label_colour_share(_camera_still(tmp_path)) < 0.0005  # and not in what the camera filmed
        assert re.search(r"\d+ (person|people) seen: \d+ with mask, \d+ without", page.content())
        assert "Traceback" not in server.log_text()


@pytest.fixture
def browser(tmp_path):
    from appserver import CHROMIUM_FLAGS
    from conftest import launch_browser

    yield from launch_browser(CHROMIUM_FLAGS)


@pytest.mark.shared
@pytest.mark.slow
def test_in_a_browser_an_upload_is_analysed_cancelled_and_analysed_again(browser, scene_clip):
    from appserver import AppServer

    with AppServer() as server:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(server.url + "/video")
        page.get_by_text("Video file", exact=True).click()
        page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(str(scene_clip))
        go = page.get_by_role("button", name="Analyse the video")
        go.click(timeout=120_000)
        page.get_by_text(re.compile(r"Analysing: frame [\d,]+ of 440 · .* left")).wait_for(timeout=120_000)
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("Cancelled; nothing was kept.").wait_for(timeout=60_000)
        go.click()
        page.get_by_text("7 people seen: 4 with mask, 3 without").wait_for(timeout=300_000)
        for name in ("Annotated video (mp4)", "Detections (CSV)", "Detections (JSON)"):  # (after their icon)
            page.get_by_role("button", name=re.compile(re.escape(name))).wait_for(timeout=60_000)
        with page.expect_download() as download:
            page.get_by_role("button", name=re.compile(re.escape("Detections (CSV)"))).click()
        assert download.value.suggested_filename == "doorway-faces.csv"
        assert Path(download.value.path()).read_text().startswith("frame,t,track,label,p_mask")
        assert "Traceback" not in server.log_text()


def _camera_still(tmp_path):
    """The first frame the fake camera films, as a PNG."""
    from PIL import Image

    from clips import pick_scenes, scene_frames

    still = tmp_path / "camera.png"
    scene = pick_scenes(SCENES, n=1, min_side=60, names=CLIP_SCENES[3:])[0]
    Image.fromarray(next(scene_frames(scene, 2))[0]).save(still)
    return still


def _label_colour_share(png) -> float:
    """The share of a picture's pixels in the two label colours (the scenes themselves have next to none)."""
    from PIL import Image

    from maskdet import gallery

    pixels = np.asarray(Image.open(png).convert("RGB"), np.int16).reshape(-1, 3)
    share = 0.0
    for colour in gallery.COLOURS.values():
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        share += float((np.abs(pixels - rgb).max(axis=1) < 40).mean())
    return share
