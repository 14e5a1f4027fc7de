"""The Video page: the browser's camera live, or a video file, with each face boxed and labelled and the
people counted over time. maskdet.video_analysis (files) and maskdet.camera (live) do the work; this page
draws."""

import os

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import drawing, loaders, permissions, sidebar
from maskdet import access, camera, config, tracking, video, video_analysis

FINDER_WORDS = {"fast": "Fast (BlazeFace)", "balanced": "Balanced (+ MTCNN)", "thorough": "Thorough (as for photos)"}
# The people table: each person's track, as the annotated video numbers them (#3).
PEOPLE_COLUMNS = {
    "track": "person",
    "label": "label (most frames)",
    "frames": "analysed frames",
    "frames_with_mask": "frames with mask",
    "p_mask": "mean P(mask)",
    "first_s": "first seen (s)",
    "last_s": "last seen (s)",
}
FINDER_SHORT = {"fast": "BlazeFace alone", "balanced": "MTCNN once + BlazeFace", "thorough": "the photos' finder"}


# Read top-down: the model, which source, then the live view or the file's analysis.
def main():
    st.title("Video")
    permissions.require("classify")
    s = sidebar.settings()
    if s.model_path is None:
        loaders.classifier_or_message(None)  # says how to get a model
        return
    source, finder = choices()
    classifier = loaders.classifier_or_message(s.model_path)
    if classifier is None:
        return
    if source == "Live camera":
        live(classifier, str(s.model_path), finder)
    else:
        video_file(classifier, str(s.model_path), os.stat(s.model_path).st_mtime, finder)


# The source (camera or file) and how faces are found; returns both.
def choices() -> tuple[str, str]:
    left, right = st.columns([2, 1])
    source = left.radio("Source", ["Live camera", "Video file"], horizontal=True, key="video_source")
    finder = right.selectbox(
        "Face finder",
        config.VIDEO_FINDERS,
        format_func=FINDER_WORDS.get,
        key="video_finder",
        help="Fast keeps up with a camera (about 15 ms a frame here) but misses more small and "
        "turned faces; Thorough is the Classify page's finder, about ten times slower.",
    )
    return source, finder


# ---------------------------------------------------------------- live camera


# The camera stream through streamlit-webrtc: each frame comes back with the newest boxes drawn on it.
def live(classifier, model_path: str, finder: str):
    WebRtcMode, webrtc_streamer = webrtc()

    analyser = live_analyser(classifier, model_path, finder)

    def on_frame(frame):  # runs in the WebRTC thread: no Streamlit calls here
        import av

        shown = analyser(frame.to_ndarray(format="rgb24"))
        return av.VideoFrame.from_ndarray(shown, format="rgb24")

    st.caption(
        "Allow the camera when the browser asks. The video stays between your browser and this server "
        "(no relay servers); frames are analysed as fast as the server can and never queued, so the picture "
        "keeps up with the camera and the boxes are those of the newest analysed frame."
    )
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        video_frame_callback=on_frame,
        async_processing=False,
        rtc_configuration={"iceServers": []},  # a local connection needs no STUN/TURN server, and none is reachable
        media_stream_constraints={
            "video": {"width": {"ideal": 640}, "height": {"ideal": 480}, "frameRate": {"ideal": 30}},
            "audio": False,
        },
    )
    if st.button("Reset the counts", icon=":material/restart_alt:", key="live_reset"):
        held = st.session_state.pop("live_analyser", None)
        if held is not None:
            held[1].stop()  # its worker ends and gives its slot back
        st.rerun()
    live_readout(analyser, ctx.state.playing)


# streamlit-webrtc, imported after aiortc's SRTP library is made safe beside TensorFlow (camera.import_webrtc
# says why: without it the server died as this page imported streamlit-webrtc).
def webrtc():
    camera.import_webrtc()
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    return WebRtcMode, webrtc_streamer


# One analyser per session, model and finder (it holds the tracker, so the counts survive reruns).
def live_analyser(classifier, model_path: str, finder: str) -> camera.LiveAnalyser:
    key = (model_path, finder)
    held = st.session_state.get("live_analyser")
    if held is None or held[0] != key:
        if held is not None:
            held[1].stop()
        # one of the server's classification slots while the stream runs (freed a few seconds after it stops)
        held = (key, camera.LiveAnalyser(classifier, finder, slot=lambda: access.classification_slot(wait=5)))
        st.session_state["live_analyser"] = held
    return held[1]


# Frames a second, latency, faces in view and people seen, refreshed every second while the camera runs.
def live_readout(analyser: camera.LiveAnalyser, playing: bool):
    @st.fragment(run_every=1.0 if playing else None)
    def readout():
        s = analyser.stats()
        if s["error"]:
            st.warning(s["error"], icon=":material/hourglass_top:")
        cols = st.columns(5)
        cols[0].metric("Frames/s", f"{s['fps']:.1f}" if s["fps"] else "–")
        cols[1].metric("Analysed/s", f"{s['analysed_fps']:.1f}" if s["analysed_fps"] else "–")
        cols[2].metric(
            "Latency",
            f"{s['latency_ms']} ms" if s["latency_ms"] is not None else "–",
            help="From a camera frame's arrival to the first frame shown with its boxes",
        )
        cols[3].metric("With mask now", s["now"][tracking.MASK])
        cols[4].metric("Without mask now", s["now"][tracking.NO_MASK])
        st.markdown(f"**{s['sentence']}** (each person once: faces are followed from frame to frame)")
        if s["analysis_ms"] is not None:
            st.caption(
                f"One frame's faces found and classified in {s['analysis_ms']} ms (median); "
                f"{s['frames_analysed']:,} of {s['frames_in']:,} frames analysed so far."
            )

    readout()


# ---------------------------------------------------------------- a video file


# Upload, settings, the analysis with progress and cancel, then the result (kept until the file or a setting changes).
def video_file(classifier, model_path: str, mtime: float, finder: str):
    limit = min(config.VIDEO_UPLOAD_MAX_MB, st.get_option("server.maxUploadSize"))
    upload = st.file_uploader(
        "Video",
        type=list(video.VIDEO_EXTENSIONS),
        key="video_upload",
        max_upload_size=limit,
        help=f"mp4, mov, webm, mkv or avi; up to {limit} MB and {video.fmt_duration(config.VIDEO_MAX_SECONDS)} long",
    )
    ceiling = (
        ""
        if limit >= config.VIDEO_UPLOAD_MAX_MB
        else f" (the server's upload ceiling, `server.maxUploadSize`; videos may have up to "
        f"{config.VIDEO_UPLOAD_MAX_MB} MB where it is raised)"
    )
    st.caption(
        f"mp4, mov, webm, mkv or avi, up to {limit} MB{ceiling} and {config.VIDEO_MAX_SECONDS // 60} minutes; "
        "longer clips: `python -m maskdet predict-video`. The video stays on this server only while this "
        "page shows it."
    )
    every = st.number_input(
        "Analyse every N-th frame",
        min_value=1,
        max_value=30,
        value=config.DEFAULT_EVERY,
        key="video_every",
        help="2: a 25 fps clip is looked at 12.5 times a second. The annotated "
        "video has every frame, with the newest boxes.",
    )
    if upload is None:
        st.info(
            "Upload a clip to see each face boxed and labelled, and how many people wore a mask.",
            icon=":material/movie:",
        )
        return
    key = (upload.file_id, model_path, mtime, every, finder)
    held = st.session_state.get("video_result")
    if held is None or held["key"] != key:
        if not admitted(upload):
            return
        if not st.button("Analyse the video", type="primary", icon=":material/play_arrow:", key="video_go"):
            if st.session_state.get("video_cancelled") == upload.file_id:
                st.info("Cancelled; nothing was kept.", icon=":material/cancel:")
            return
        held = analyse(classifier, upload, every, finder)
        if held is None:
            return
        held["key"] = key
        st.session_state["video_result"] = held
        st.rerun()  # drawn afresh: the result without the run's button, bar and Cancel
    show_result(held)


# Whether this session may have this upload analysed (the session's upload limit counts videos too).
def admitted(upload) -> bool:
    seen = st.session_state.setdefault("upload_ids", [])
    ok, refused = access.admit_uploads(seen, [upload.file_id])
    if refused:
        st.warning(
            f"This session has had its {access.max_uploads()} uploads analysed; {upload.name} is not. "
            "The limit keeps one visitor from taking the server from others.",
            icon=":material/block:",
        )
    return bool(ok)


# The analysis itself, with a progress bar, time left and a Cancel button; the result, or None with the reason.
def analyse(classifier, upload, every: int, finder: str) -> dict | None:
    import io

    try:
        info = video.probe(upload, max_seconds=config.VIDEO_MAX_SECONDS)
    except video.VideoError as exc:
        st.error(str(exc), icon=":material/broken_image:")
        return None
    st.caption(f"{upload.name}: {info.describe()}")
    bar = st.progress(0.0, text="Waiting for a free slot...")
    # a click reruns the page, which stops this run at its next progress update: the analysis ends there
    st.button("Cancel", icon=":material/cancel:", key="video_cancel")
    st.session_state["video_cancelled"] = upload.file_id  # cleared below once the analysis completes
    records, out = [], io.BytesIO()

    def progress(done, total, elapsed):
        left = video_analysis.time_left(done, total, elapsed)
        text = f"Analysing: frame {done:,} of {total:,}" + (f" · {video.fmt_duration(left)} left" if left else "")
        bar.progress(min(done / max(total, 1), 1.0), text=text)

    try:
        with access.classification_slot():  # one of the server's MAX_CLASSIFICATIONS for the whole video
            summary = video_analysis.analyse(
                upload,
                classifier,
                every=every,
                out=out,
                finder=finder,
                progress=progress,
                on_frame=records.append,
                max_seconds=config.VIDEO_MAX_SECONDS,
            )
    except video.VideoError as exc:
        bar.empty()
        st.error(str(exc), icon=":material/broken_image:")
        st.session_state.pop("video_cancelled", None)
        return None
    except access.Busy as exc:
        bar.empty()
        st.warning(str(exc), icon=":material/hourglass_top:")
        st.session_state.pop("video_cancelled", None)
        return None
    bar.empty()
    st.session_state.pop("video_cancelled", None)
    return {"summary": summary, "records": records, "mp4": out.getvalue(), "name": upload.name}


# The verdict, the annotated video, faces over time, the people, and the downloads.
def show_result(held: dict):
    summary, records = held["summary"], held["records"]
    stem = os.path.splitext(held["name"])[0]
    with st.container(border=True):
        st.markdown(f"### {summary['sentence']}")
        st.caption(
            f"{summary['frames_analysed']:,} of {summary['frames_decoded']:,} frames analysed at "
            f"{summary['work_size'][0]}x{summary['work_size'][1]} in {summary['elapsed_s']:.1f} s "
            f"({summary['analysed_fps']} frames/s, {summary['speed']}x real time; "
            f"faces found by {FINDER_SHORT[summary['finder']]}). A person is counted once, with the label "
            f"most of their frames gave, once seen in {tracking.MIN_HITS} analysed frames."
        )
        if summary["broken"]:
            st.warning(
                f"{held['name']}: {summary['broken']}; the part before it was analysed.", icon=":material/warning:"
            )
        picture, chart = st.columns([3, 2])
        picture.video(held["mp4"], format="video/mp4")
        with chart:
            counts_chart(summary["timeline"])
        if summary["people"]:
            people = pd.DataFrame(summary["people"])
            people["label"] = people["label"].map(config.LABEL_WORDS)
            st.dataframe(people[list(PEOPLE_COLUMNS)].rename(columns=PEOPLE_COLUMNS), hide_index=True, width="stretch")
        a, b, c = st.columns(3)
        a.download_button(
            "Annotated video (mp4)",
            held["mp4"],
            file_name=f"{stem}-annotated.mp4",
            mime="video/mp4",
            icon=":material/download:",
            key="dl_mp4",
        )
        b.download_button(
            "Detections (CSV)",
            video_analysis.detections_csv(records),
            file_name=f"{stem}-faces.csv",
            mime="text/csv",
            icon=":material/download:",
            key="dl_csv",
        )
        c.download_button(
            "Detections (JSON)",
            video_analysis.detections_json(summary, records),
            file_name=f"{stem}-faces.json",
            mime="application/json",
            icon=":material/download:",
            key="dl_json",
        )


# Faces in view over time, by label, one point a second (the mean over that second's analysed frames).
def counts_chart(timeline: list[dict]):
    if not timeline:
        st.caption("No frame analysed.")
        return
    frame = pd.DataFrame(timeline)
    frame["second"] = frame["t"].astype(int)
    per_second = frame.groupby("second")[list(config.CLASS_NAMES)].mean().reset_index()
    long = per_second.melt("second", var_name="label", value_name="faces")
    chart = (
        alt.Chart(long, title="Faces in view")
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("second:Q", title="seconds into the video"),
            y=alt.Y("faces:Q", title="faces (mean over a second)"),
            color=alt.Color(
                "label:N",
                scale=drawing.CLASS_SCALE,
                title=None,
                legend=alt.Legend(orient="bottom", labelExpr="replace(datum.label, '_', ' ')"),
            ),
            tooltip=["second", "label", alt.Tooltip("faces:Q", format=".1f")],
        )
    )
    st.altair_chart(chart, width="stretch")


main()
