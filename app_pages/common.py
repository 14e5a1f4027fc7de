"""What every page shares: the sidebar settings, the cached loaders, and small drawing helpers.

Not a page itself (streamlit_app.py lists the pages). Loaders are cached and draw nothing;
all ML and file work happens in maskdet, these functions only call it.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.logger import get_logger

from maskdet import config, data, evaluate, gallery, infer, models, runs, saliency

# The server's log (stdout): one line per model load, so an operator (and the load test) can see that a
# model is loaded once per process and model version, however many sessions use it.
LOG = get_logger("maskdet.app")

MASK, NO_MASK = config.CLASS_NAMES
LABEL_WORDS = {MASK: "with mask", NO_MASK: "without mask"}
# Altair colour scale that matches gallery.COLOURS, so charts and pictures agree.
CLASS_SCALE = alt.Scale(domain=list(config.CLASS_NAMES), range=[gallery.COLOURS[c] for c in config.CLASS_NAMES])


@dataclass(frozen=True)
class Settings:
    """The choices made in the sidebar, read by every page."""
    data_dir: Path
    runs_dir: Path
    model_path: Path | None


# ---------------------------------------------------------------- the sidebar

# Draw the shared sidebar (dataset folder, model, runs folder) and return what it says.
def sidebar() -> Settings:
    ss = st.session_state
    ss.setdefault("data_dir", str(config.DATA_DIR))
    ss.setdefault("runs_dir", str(config.RUNS_DIR))
    if "pending_data_dir" in ss:  # set by the Dataset page after a download; widgets cannot be set once drawn
        ss["data_dir"] = ss.pop("pending_data_dir")
    with st.sidebar:
        st.subheader("Settings", anchor=False)
        st.text_input("Dataset folder", key="data_dir",
                      help="A folder with one sub-folder per class (with_mask / without_mask, nested layouts "
                           "such as Kaggle's download work too). Default: MASKDET_DATA or the shared data set.")
        dataset_status(ss["data_dir"])
        model_path = model_picker(Path(ss["runs_dir"]))
        with st.expander("Folders"):
            st.text_input("Runs folder", key="runs_dir", help="Where training runs are written (MASKDET_RUNS).")
            st.caption(f"Models folder: `{config.MODELS_DIR}` (MASKDET_MODELS)")
    return settings(model_path)


# The settings as the sidebar left them (pages call this; the sidebar is drawn before every page).
def settings(model_path: Path | None = None) -> Settings:
    ss = st.session_state
    if model_path is None and ss.get("model_path"):
        model_path = Path(ss["model_path"])
    return Settings(Path(ss.get("data_dir") or config.DATA_DIR).expanduser(),
                    Path(ss.get("runs_dir") or config.RUNS_DIR).expanduser(), model_path)


# One line under the folder box: how many class folders were found, or why the folder is unusable.
def dataset_status(folder: str) -> None:
    try:
        found = check_folder(folder)
    except data.DatasetError as exc:
        st.error(str(exc), icon=":material/folder_off:")
        return
    st.caption(" · ".join(f"{cls}: {n} folder{'s' if n != 1 else ''}" for cls, n in found.items()))


# Pick the model the Evaluate and Classify pages use: the active one, the previous one, or a run's.
def model_picker(runs_dir: Path) -> Path | None:
    options = model_options(str(runs_dir), str(config.MODELS_DIR))
    if not options:
        st.warning("No model yet. Train one on the **Train** page and promote it, "
                   f"or put a model at `{config.DEFAULT_MODEL}`.", icon=":material/model_training:")
        st.session_state.pop("model_path", None)
        return None
    if "pending_model_path" in st.session_state:  # set by a promotion on the Train page
        st.session_state["model_path"] = st.session_state.pop("pending_model_path")
    if st.session_state.get("model_path") not in options:
        st.session_state["model_path"] = next(iter(options))
    choice = st.selectbox("Model", list(options), key="model_path", format_func=options.get,
                          help="The active model serves by default; a finished run's model can be tried "
                               "before it is promoted (Train page).")
    card = models.read_card(Path(choice)) if Path(choice).parent == Path(config.MODELS_DIR) else None
    if card is not None:
        st.caption(models.card_summary(card))
    elif Path(choice) == Path(config.DEFAULT_MODEL):
        st.caption("no model card")
    return Path(choice)


# ---------------------------------------------------------------- cached loaders

# Which class folders a dataset folder holds (cheap; re-checked every few seconds).
@st.cache_data(ttl=5, show_spinner=False)
def check_folder(folder: str) -> dict[str, int]:
    return {cls: len(dirs) for cls, dirs in data.find_class_folders(folder).items()}


# The dataset table of a folder, without the bulky signatures (scan caches per-file results on disk too).
@st.cache_data(show_spinner="Reading the dataset folder (the first time takes a while)...", max_entries=4)
def load_table(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> pd.DataFrame:
    return data.scan(folder, val_fraction=val_fraction).drop(columns=["signature"])


# The data-health report of a folder.
@st.cache_data(show_spinner=False, max_entries=4)
def load_health(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> dict:
    return data.health(load_table(folder, val_fraction))


# Choices for the model picker: path -> label; models in the models folder first, then finished runs.
@st.cache_data(ttl=3, show_spinner=False)
def model_options(runs_dir: str, models_dir: str) -> dict[str, str]:
    options = {}
    for m in models.list_models(Path(models_dir)):
        role = ("Active" if Path(m["path"]) == Path(config.DEFAULT_MODEL)
                else "Previous" if Path(m["path"]) == models.previous_model() else "Model")
        options[m["path"]] = f"{role}: {m['name']}"
    for r in runs.list_runs(Path(runs_dir)):
        if r.get("has_model") and r["state"] in ("done", "cancelled"):
            acc = r.get("val_accuracy")
            options[str(Path(r["path"]) / "model.keras")] = (
                f"Run {r['run_id']}" + (f" (val acc {acc:.0%})" if isinstance(acc, float) else ""))
    return options


# A model file as a ready classifier, loaded once per file version (a promotion replaces the file).
def load_classifier(path: str, mtime: float) -> infer.Classifier:
    with st.spinner("Loading the model..."):
        return _classifier(path, mtime)


# The cached classifier itself; it draws nothing, so the warm-up thread can call it too.
@st.cache_resource(show_spinner=False, max_entries=4)
def _classifier(path: str, mtime: float) -> infer.Classifier:
    started = time.perf_counter()
    classifier = infer.Classifier.load(path)
    LOG.info("maskdet: model loaded: %s in %.1f s (%s)", path, time.perf_counter() - started, classifier.engine)
    return classifier


# Load the model and build the face finder in the background, once per server and model version,
# so that the first photo is answered in seconds: TensorFlow and the model take ~10 s to load.
# Then convert the model for the TFLite engine (a face in ~0.5 ms instead of ~7 ms), unless a
# conversion of this very file is cached already; until it is ready, the Keras engine serves.
@st.cache_resource(show_spinner=False, max_entries=4)
def warm_up(path: str, mtime: float) -> threading.Thread:
    def work():
        try:
            classifier = _classifier(path, mtime)  # a page asking meanwhile waits for this, no double load
            infer.classify_photo(classifier, Image.new("RGB", (64, 64), "grey"), mode="auto")
            if classifier.engine == "keras":  # first use of this model file: convert it (cached by content)
                started = time.perf_counter()
                if classifier.attach_lite(path, convert=True):
                    LOG.info("maskdet: TFLite engine ready for %s in %.1f s", path, time.perf_counter() - started)
        except Exception:  # a bad model file: the pages say so when they load it themselves
            pass

    # not a daemon: TensorFlow aborts the process when it is torn down mid-conversion at exit
    thread = threading.Thread(target=work, name="maskdet-warm-up")
    thread.start()
    return thread


# The classifier for a model path, or None with the reason shown on the page.
def classifier_or_message(path: Path | None):
    if path is None:
        st.info("No model to use yet. Train one on the **Train** page (a few epochs on a sample take a few "
                "minutes), then promote it to the active model.", icon=":material/model_training:")
        return None
    try:
        return load_classifier(str(path), os.stat(path).st_mtime)
    except FileNotFoundError:
        st.error(f"{path}: the model file is gone. Pick another model in the sidebar.")
    except infer.ModelError as exc:
        st.error(str(exc))
    return None


# The validation-split predictions of a model on a folder, computed once per model file and folder.
@st.cache_data(show_spinner="Classifying the validation images (once per model)...", max_entries=6)
def load_predictions(model_path: str, mtime: float, folder: str, val_fraction: float) -> pd.DataFrame:
    table = load_table(folder, val_fraction)
    val = table[table["split"] == "val"]
    if data.usable(val).empty:
        raise data.DatasetError(f"{folder}: no readable images in the validation split")
    return evaluate.predict_table(load_classifier(model_path, mtime), val)


# Grad-CAM overlays (JPEG bytes) for dataset images, explaining the class the model predicted.
@st.cache_data(show_spinner="Computing saliency maps...", max_entries=64)
def load_saliency(model_path: str, mtime: float, paths: tuple[str, ...], size: int = 160) -> list[bytes]:
    model = load_classifier(model_path, mtime).model
    images = [data.open_image(p) for p in paths]
    heat = saliency.grad_cam(model, np.stack([data.to_array(im) for im in images]))
    return [jpeg(saliency.overlay(im, h, size=size)) for im, h in zip(images, heat)]


# ---------------------------------------------------------------- drawing helpers

# A PIL image as JPEG bytes (what st.image sends fastest).
def jpeg(img, quality: int = 88) -> bytes:
    import io

    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# Draw pictures with captions in a grid, `columns` a row.
def image_grid(images: list, captions: list[str], columns: int = 6, width: int | str = "stretch") -> None:
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, img, cap in zip(cols, images[start:start + columns], captions[start:start + columns]):
            col.image(img, caption=cap, width=width)


# A page picker for long lists; returns the slice of rows to show.
def pager(n: int, per_page: int, key: str) -> slice:
    pages = max(1, -(-n // per_page))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = 1
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    page = left.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=key)
    first = (page - 1) * per_page
    right.caption(f"showing {first + 1 if n else 0}-{min(n, first + per_page)} of {n:,}")
    return slice(first, first + per_page)


# "with mask" in green or "without mask" in red, as Markdown.
def label_markdown(label: str | None) -> str:
    if label is None:
        return ":orange[**unknown**]"
    return f":{'green' if label == MASK else 'red'}[**{LABEL_WORDS[label]}**]"


# Path -> a short file name for captions.
def short_name(path: str, limit: int = 22) -> str:
    name = Path(path).name
    return name if len(name) <= limit else name[: limit - 9] + "…" + name[-8:]
