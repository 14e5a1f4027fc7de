"""What every page shares: the sidebar settings, the cached loaders, and small drawing helpers.

Not a page itself (streamlit_app.py lists the pages). Loaders are cached and draw nothing;
all ML and file work happens in maskdet, these functions only call it.
"""

from __future__ import annotations

import contextvars
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.logger import get_logger

from maskdet import (
    access as access_rules,
    cards,
    config,
    dataset,
    evaluate,
    gallery,
    health,
    images,
    infer,
    models,
    photos,
    runs,
    saliency,
)

# The server's log (stdout): one line per model load, so an operator (and the load test) can see that a
# model is loaded once per process and model version, however many sessions use it.
LOG = get_logger("maskdet.app")

MASK, NO_MASK = config.CLASS_NAMES
LABEL_WORDS = {MASK: "with mask", NO_MASK: "without mask", config.UNCERTAIN: "uncertain"}
# Altair colour scale that matches gallery.COLOURS, so charts and pictures agree.
CLASS_SCALE = alt.Scale(domain=list(config.CLASS_NAMES), range=[gallery.COLOURS[c] for c in config.CLASS_NAMES])


@dataclass(frozen=True)
class Settings:
    """The choices made in the sidebar, read by every page."""

    data_dir: Path
    runs_dir: Path
    model_path: Path | None


# ---------------------------------------------------------------- who may do what (maskdet.access decides)

# Session-state key of a visitor who gave the right token (a fingerprint of the token, not the token).
SIGNED_IN = "_maskdet_signed_in"


# This server's mode: from where it listens (server.address) and the token in MASKDET_TOKEN or secrets.toml.
def access() -> access_rules.Access:
    secrets = st.secrets if st.secrets.load_if_toml_exists() else None  # no secrets.toml: no error drawn
    return access_rules.decide(st.get_option("server.address"), access_rules.token_from(secrets=secrets))


# Whether this session may see the pages (always, unless the server asks for a token it has not had).
def signed_in(acc: access_rules.Access | None = None) -> bool:
    return (acc or access()).signed_in(st.session_state.get(SIGNED_IN))


# Check a token typed by a visitor; a wrong one costs a second, so guessing is slow.
def sign_in(acc: access_rules.Access, given: str) -> bool:
    if acc.check_token(given):
        st.session_state[SIGNED_IN] = access_rules.fingerprint(acc.token)
        return True
    time.sleep(1)
    return False


# Stop the page with a message unless this server's mode allows the action (the pages' second line of
# defence: st.navigation lists only the pages the mode allows).
def require(action: str) -> None:
    acc = access()
    try:
        if not acc.signed_in(st.session_state.get(SIGNED_IN)):
            raise access_rules.AccessDenied("Sign in with the access token first.")
        acc.require(action)
    except access_rules.AccessDenied as exc:
        st.error(str(exc), icon=":material/lock:")
        st.stop()


# A folder typed by a user, resolved, if it lies under the allowed roots; else None and the reason shown.
def confined(folder: str, label: str) -> Path | None:
    try:
        return access_rules.confine(folder)
    except access_rules.PathRefused as exc:
        st.error(f"{label} refused: {exc}", icon=":material/block:")
        return None


# ---------------------------------------------------------------- the sidebar


# Draw the shared sidebar (dataset folder, model, runs folder) and return what it says. A classify-only
# server shows the model picker only (the active and previous models, no runs, no folders).
def sidebar(acc: access_rules.Access | None = None) -> Settings:
    acc = acc or access()
    ss = st.session_state
    ss.setdefault("data_dir", str(config.DATA_DIR))
    ss.setdefault("runs_dir", str(config.RUNS_DIR))
    if "pending_data_dir" in ss:  # set by the Dataset page after a download; widgets cannot be set once drawn
        ss["data_dir"] = ss.pop("pending_data_dir")
    with st.sidebar:
        st.subheader("Settings", anchor=False)
        if not acc.allows("choose_folders"):
            model_path = model_picker(None)
        else:
            st.text_input(
                "Dataset folder",
                key="data_dir",
                help="A folder with one sub-folder per class (with_mask / without_mask, nested layouts "
                "such as Kaggle's download work too). Default: MASKDET_DATA or the shared data "
                "set. Only folders under the allowed roots (MASKDET_DATA_ROOTS) are read.",
            )
            dataset_status(ss["data_dir"])
            runs_dir = confined(ss["runs_dir"], "Runs folder")
            model_path = model_picker(runs_dir or Path(config.RUNS_DIR))
            with st.expander("Folders"):
                st.text_input("Runs folder", key="runs_dir", help="Where training runs are written (MASKDET_RUNS).")
                st.caption(f"Models folder: `{config.MODELS_DIR}` (MASKDET_MODELS)")
    return settings(model_path)


# The settings as the sidebar left them (pages call this; the sidebar is drawn before every page).
# A runs folder outside the allowed roots falls back to the configured one (the sidebar says why); a
# dataset folder is checked where it is read (check_folder, load_table), so the page says why.
def settings(model_path: Path | None = None) -> Settings:
    ss = st.session_state
    if model_path is None and ss.get("model_path"):
        model_path = Path(ss["model_path"])
    runs_dir = Path(ss.get("runs_dir") or config.RUNS_DIR).expanduser()
    try:
        runs_dir = access_rules.confine(runs_dir)
    except access_rules.PathRefused:
        runs_dir = Path(config.RUNS_DIR)
    return Settings(Path(ss.get("data_dir") or config.DATA_DIR).expanduser(), runs_dir, model_path)


# One line under the folder box: how many class folders were found, or why the folder is unusable.
def dataset_status(folder: str) -> None:
    try:
        found = check_folder(folder)
    except dataset.DatasetError as exc:
        st.error(str(exc), icon=":material/folder_off:")
        return
    st.caption(" · ".join(f"{cls}: {n} folder{'s' if n != 1 else ''}" for cls, n in found.items()))


# Pick the model the Evaluate and Classify pages use: the active one, the previous one, or a run's
# (runs_dir None: the models folder's only).
def model_picker(runs_dir: Path | None) -> Path | None:
    options = model_options(
        str(runs_dir) if runs_dir else None, str(config.MODELS_DIR), models.version(config.MODELS_DIR)
    )
    if not options:
        st.warning(
            f"No model yet. Train one on the **Train** page and promote it, or put a model at `{config.DEFAULT_MODEL}`."
            if runs_dir
            else "No model on this server yet: its owner has to put one in place.",
            icon=":material/model_training:",
        )
        st.session_state.pop("model_path", None)
        return None
    if "pending_model_path" in st.session_state:  # set by a promotion on the Train page
        st.session_state["model_path"] = st.session_state.pop("pending_model_path")
    if st.session_state.get("model_path") not in options:
        st.session_state["model_path"] = next(iter(options))
    choice = st.selectbox(
        "Model",
        list(options),
        key="model_path",
        format_func=options.get,
        help="The active model serves by default; a finished run's model can be tried "
        "before it is promoted (Train page).",
    )
    card = models.read_card(Path(choice)) if Path(choice).parent == Path(config.MODELS_DIR) else None
    if card is not None:
        st.caption(cards.card_summary(card))
    elif Path(choice) == Path(config.DEFAULT_MODEL):
        st.caption("no model card")
    return Path(choice)


# ---------------------------------------------------------------- cached loaders


# A dataset folder a page may read: allowed by the mode and under the roots, resolved; else DatasetError
# with the reason, which the pages already show for a folder they cannot use.
def dataset_folder(folder: str) -> str:
    try:
        access().require("browse")
        return str(access_rules.confine(folder))
    except (access_rules.AccessDenied, access_rules.PathRefused) as exc:
        raise dataset.DatasetError(str(exc)) from None


# Which class folders a dataset folder holds (cheap; re-checked every few seconds).
def check_folder(folder: str) -> dict[str, int]:
    return _check_folder(dataset_folder(folder))


@st.cache_data(ttl=5, show_spinner=False)
def _check_folder(folder: str) -> dict[str, int]:
    return {cls: len(dirs) for cls, dirs in dataset.find_class_folders(folder).items()}


# The dataset table of a folder, without the bulky signatures (scan caches per-file results on disk too),
# with a progress bar while a folder is read and its look-alike pairs checked.
def load_table(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> pd.DataFrame:
    bar = st.empty()
    try:
        return _load_table(dataset_folder(folder), val_fraction, _bar=bar)
    finally:
        bar.empty()


@st.cache_data(show_spinner="Reading the dataset folder (the first time takes a while)...", max_entries=4)
def _load_table(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION, _bar=None) -> pd.DataFrame:
    return dataset.scan(folder, val_fraction=val_fraction, progress=_progress_bar(_bar) if _bar else None).drop(
        columns=["signature"]
    )


load_table.clear = _load_table.clear  # pages clear the tables after a download


# The fingerprint of a folder's images (maskdet.dataset.fingerprint), to tell whether a model was trained on them.
def load_fingerprint(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> str:
    return _load_fingerprint(dataset_folder(folder), val_fraction)


@st.cache_data(show_spinner=False, max_entries=4)
def _load_fingerprint(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> str:
    return dataset.fingerprint(load_table(folder, val_fraction), folder)


# The data-health report of a folder.
def load_health(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> dict:
    return _load_health(dataset_folder(folder), val_fraction)


@st.cache_data(show_spinner=False, max_entries=4)
def _load_health(folder: str, val_fraction: float = config.DEFAULT_VAL_FRACTION) -> dict:
    return health.health(load_table(folder, val_fraction))


# Choices for the model picker: path -> label; models in the models folder first, then finished runs.
# Keyed by the models folder's version, so a promotion or rollback from anywhere (another tab, the command
# line) shows at once; the runs part is re-read every few seconds.
@st.cache_data(ttl=3, show_spinner=False)
def model_options(runs_dir: str | None, models_dir: str, models_version: str = "") -> dict[str, str]:
    options = {}
    for m in models.list_models(Path(models_dir)):
        role = (
            "Active"
            if Path(m["path"]) == Path(config.DEFAULT_MODEL)
            else "Previous"
            if Path(m["path"]) == models.previous_model()
            else "Model"
        )
        options[m["path"]] = f"{role}: {m['name']}"
    for r in runs.list_runs(Path(runs_dir)) if runs_dir else []:
        if r.get("has_model") and r["state"] in ("done", "cancelled"):
            acc = r.get("val_accuracy")
            options[str(Path(r["path"]) / "model.keras")] = f"Run {r['run_id']}" + (
                f" (val acc {acc:.0%})" if isinstance(acc, float) else ""
            )
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
            photos.classify_photo(classifier, Image.new("RGB", (64, 64), "grey"), mode="auto")
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
        st.info(
            "No model to use yet. Train one on the **Train** page (a few epochs on a sample take a few "
            "minutes), then promote it to the active model.",
            icon=":material/model_training:",
        )
        return None
    try:
        return load_classifier(str(path), os.stat(path).st_mtime)
    except FileNotFoundError:
        st.error(f"{path}: the model file is gone. Pick another model in the sidebar.")
    except infer.ModelError as exc:
        st.error(str(exc))
    return None


# The validation-split predictions of a model on a folder, computed once per model file and folder and kept
# on disk (maskdet.evaluate.stored_predictions), with a progress bar that counts the images while they are read
# and classified. The model is loaded only when they must be computed.
def load_predictions(model_path: str, mtime: float, folder: str, val_fraction: float) -> pd.DataFrame:
    bar = st.empty()
    try:
        return _load_predictions(model_path, mtime, dataset_folder(folder), val_fraction, _bar=bar)
    finally:
        bar.empty()


@st.cache_data(show_spinner=False, max_entries=6)
def _load_predictions(model_path: str, mtime: float, folder: str, val_fraction: float, _bar=None) -> pd.DataFrame:
    table = load_table(folder, val_fraction)
    val = table[table["split"] == "val"]
    if dataset.usable(val).empty:
        raise dataset.DatasetError(f"{folder}: no readable images in the validation split")
    progress = _progress_bar(_bar, "validation images") if _bar else None
    return evaluate.stored_predictions(model_path, val, lambda: _classifier(model_path, mtime), progress)


# A progress(done, total, what) callback for a cached loader that draws "What: 1,200 of 2,345 <unit>" on `bar`
# (an st.empty made outside the cache), and is not recorded by the cache, so no stale bar is replayed.
def _progress_bar(bar, unit: str = ""):
    from streamlit.runtime.caching.cached_message_replay import in_cached_function

    def draw(done, total, what):
        in_cached_function.set(False)
        bar.progress(
            min(done / max(total, 1), 1.0),
            text=f"{what[:1].upper() + what[1:]}: {done:,} of {total:,}{' ' + unit if unit else ''}",
        )

    return lambda done, total, what: contextvars.copy_context().run(draw, done, total, what)


# Grad-CAM overlays (JPEG bytes) for dataset images given by path and content hash, explaining the class the
# model predicted, each at its image's own size (a large photo's at most max_side px). The maps are kept on
# disk (maskdet.saliency.stored_grad_cam): the model is loaded only for maps not computed before.
@st.cache_data(show_spinner="Computing saliency maps...", max_entries=64)
def load_saliency(
    model_path: str, mtime: float, paths: tuple[str, ...], hashes: tuple[str, ...], max_side: int = 512
) -> list[bytes]:
    pictures = [images.open_image(p) for p in paths]
    heat = saliency.stored_grad_cam(
        model_path,
        list(hashes),
        lambda i: images.to_array(pictures[i]),
        lambda: load_classifier(model_path, mtime).model,
    )
    return [jpeg(saliency.overlay(im, h, size=min(max(im.size), max_side))) for im, h in zip(pictures, heat)]


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
        for col, img, cap in zip(cols, images[start : start + columns], captions[start : start + columns]):
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
    colour = {MASK: "green", NO_MASK: "red"}.get(label, "orange")
    return f":{colour}[**{LABEL_WORDS.get(label, label)}**]"


# Text shown as it is in Markdown (file names hold underscores, stars and brackets).
def literal(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|~<>$:])", r"\\\1", text)


# Path -> a short file name for captions.
def short_name(path: str, limit: int = 22) -> str:
    name = Path(path).name
    return name if len(name) <= limit else name[: limit - 9] + "…" + name[-8:]
