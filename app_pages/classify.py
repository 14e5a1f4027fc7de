"""The Classify page: photos in, "with mask" / "without mask" out, for each face found."""

import io
import os
from pathlib import Path

import streamlit as st

from app_pages import drawing, loaders, permissions, sidebar
from maskdet import access, config, gallery, images, photos

EXTENSIONS = [e.lstrip(".") for e in config.IMAGE_EXTENSIONS]
COUNTED = (*config.CLASS_NAMES, config.UNCERTAIN)
WHOLE = "Whole image is one face"  # the switch's name, as every message names it


# Read top-down: the model, how to read photos, the photos, one result per photo.
def main():
    st.title("Classify")
    permissions.require("classify")
    s = sidebar.settings()
    if s.model_path is None:
        loaders.classifier_or_message(None)  # says how to get a model
        return
    mode = photo_mode()
    chosen = inputs()  # drawn before the model is ready, so photos can be chosen while it loads
    classifier = loaders.classifier_or_message(s.model_path)
    if classifier is None:
        return
    if not chosen:
        st.info(
            "Upload photos or take one with the camera to see whether each face wears a mask.",
            icon=":material/add_photo_alternate:",
        )
        return
    mtime = os.stat(s.model_path).st_mtime
    results = []
    for name, blob in chosen:
        try:
            results.append((name, classify(str(s.model_path), mtime, name, blob, mode)))
        except access.Busy as exc:  # all classification slots taken for longer than we wait: not cached
            st.warning(f"{name}: {exc}", icon=":material/hourglass_top:")
    if len(results) > 1:
        summary(results)
    for name, result in results:
        show_result(name, result)


# Many photos: one row each (faces, with, without, uncertain, the verdict), as CSV and JSON to download.
def summary(results: list[tuple[str, dict]]):
    import json

    import pandas as pd

    rows = [
        {
            "file": name,
            "faces": len(r.get("faces", [])),
            **{k: (r.get("counts") or {}).get(k, 0) for k in COUNTED},
            "verdict": r.get("verdict") if not r.get("error") else "error",
            "error": r.get("error") or "",
        }
        for name, r in results
    ]
    table = pd.DataFrame(rows)
    st.subheader(f"{len(rows)} photos")
    st.dataframe(table, hide_index=True, width="stretch")
    detail = [
        {
            "file": name,
            **{k: r.get(k) for k in ("verdict", "counts", "mode", "error", "note")},
            "faces": [{k: v for k, v in f.items() if k != "picture"} for f in r.get("faces", [])],
        }
        for name, r in results
    ]
    left, right = st.columns(2)
    left.download_button(
        "Download CSV",
        table.to_csv(index=False),
        "maskdet-photos.csv",
        "text/csv",
        icon=":material/download:",
        key="summary_csv",
    )
    right.download_button(
        "Download JSON (every face)",
        json.dumps(detail, indent=1),
        "maskdet-photos.json",
        "application/json",
        icon=":material/download:",
        key="summary_json",
    )


# Whether to look for faces in the photo or treat the whole photo as one face; returns the mode.
def photo_mode() -> str:
    whole = st.toggle(
        WHOLE,
        value=False,
        key="whole_image",
        help="Off: faces are found in the photo and each one is classified (group photos, street "
        "scenes). On: the photo is already cropped to one face.",
    )
    return "crop" if whole else "auto"


# The photos to classify: uploads first, then a camera shot; a list of (name, bytes).
def inputs() -> list[tuple[str, bytes]]:
    # a --server.maxUploadSize flag can lower it
    limit = min(config.UPLOAD_MAX_MB, st.get_option("server.maxUploadSize"))
    files = st.file_uploader(
        "Photos",
        type=EXTENSIONS,
        accept_multiple_files=True,
        key="photos",
        max_upload_size=limit,
        help=f"{', '.join(EXTENSIONS)}; up to {limit} MB a file",
    )
    st.caption(
        f"JPEG, PNG, BMP, GIF, WebP or TIFF, up to {limit} MB each; photos stay on this server only "
        "for as long as this page shows them."
    )
    uploads = [(f.file_id, f.name, f) for f in files or []]
    if st.toggle("Use the camera", key="use_camera"):
        shot = st.camera_input("Take a photo", key="camera")
        if shot is not None:
            uploads.append((shot.file_id, "camera photo", shot))
    return within_limit(uploads)


# The uploads this session may have classified (maskdet.access.max_uploads() a session; each new file or
# camera shot counts once), as (name, bytes); the others are named in a message and not read.
def within_limit(uploads: list) -> list[tuple[str, bytes]]:
    seen = st.session_state.setdefault("upload_ids", [])
    admitted, refused = access.admit_uploads(seen, [uid for uid, _, _ in uploads])
    if refused:
        names = [name for uid, name, _ in uploads if uid in refused]
        st.warning(
            f"This session has had its {access.max_uploads()} photos classified; not classified: "
            f"{', '.join(names)}. The limit keeps one visitor from taking the server from others.",
            icon=":material/block:",
        )
    return [(name, f.getvalue()) for uid, name, f in uploads if uid in admitted]


# One photo's result, computed once per model file, photo and mode: the picture with boxes and the faces.
@st.cache_data(show_spinner="Classifying...", max_entries=256)
def classify(model_path: str, mtime: float, name: str, blob: bytes, mode: str) -> dict:
    classifier = loaders.load_classifier(model_path, mtime)
    source = io.BytesIO(blob)
    source.name = Path(name).name  # error messages name the file
    try:
        picture = images.open_image(source)  # decoded once: classified, then drawn on
        with access.classification_slot():  # at most access.MAX_CLASSIFICATIONS photos at once per server
            result = dict(photos.classify_photo(classifier, picture, mode=mode))
    except images.ImageError as exc:
        picture, result = None, {"error": str(exc)}
    result.setdefault("faces", [])
    result.setdefault("mode", mode)
    result["picture"] = None
    if not result.get("error"):
        boxed = [f for f in result["faces"] if f.get("box") is not None and result["mode"] != "crop"]
        result["picture"] = drawing.jpeg(gallery.draw_faces(picture, boxed, max_side=1200, numbered=len(boxed) > 1))
    return result


# The photo with its faces boxed, and the answer in colour and words; a bad file gets its reason.
# One face gets the same layout whether it was found in the photo or the photo was taken whole.
def show_result(name: str, result: dict):
    with st.container(border=True):
        if result.get("error"):
            error = result["error"]
            if not error.startswith(Path(name).name):
                error = f"{Path(name).name}: {error}"
            st.error(error, icon=":material/broken_image:")
            return
        faces = [f for f in result["faces"] if f.get("label")]
        crop = result.get("mode") == "crop"
        picture, verdict = st.columns([2, 3] if len(faces) == 1 else [2, 1])
        # a face crop is shown at most 300 px wide: enlarging a 40-px crop only shows its pixels
        picture.image(result["picture"], caption=name, width=300 if crop else "stretch")
        with verdict:
            if not faces:  # one message, naming the switch as the page does
                st.warning(
                    f"No face found. Switch on *{WHOLE}* if the photo is a face crop.",
                    icon=":material/face_retouching_off:",
                )
                return
            st.markdown(f"### {gallery.count_faces(faces)}")
            if len(faces) == 1:
                one_face(faces[0])
            else:
                st.markdown(f"The photo: {drawing.label_markdown(result.get('verdict'))}")
                for i, f in enumerate(faces, 1):
                    st.markdown(f"{i}. {drawing.label_markdown(f['label'])} · P(mask) {f['p_mask']:.2f}")
                if result.get("counts", {}).get(config.UNCERTAIN):
                    st.caption("Uncertain faces (P(mask) in the middle) are shown, not counted in the verdict.")
            if result.get("note"):
                st.caption(result["note"].replace("crop mode", f"*{WHOLE}*"))


# The verdict for a single face: a coloured label, the probability and a bar.
def one_face(face: dict):
    p = face["p_mask"]
    st.markdown(f"## {drawing.label_markdown(face['label'])}")
    if face["label"] == config.UNCERTAIN:
        st.markdown(f"P(mask) = **{p:.2f}**: too close to call. Try a tighter crop of the face, or a clearer photo.")
    else:
        sure = p if face["label"] == drawing.MASK else 1 - p
        st.markdown(
            f"P(mask) = **{p:.2f}**: the model is {'over 99%' if sure >= 0.995 else f'{sure:.0%}'} sure "
            f"the face is {config.LABEL_WORDS[face['label']]}."
        )
    st.progress(p, text="P(mask)")


main()
