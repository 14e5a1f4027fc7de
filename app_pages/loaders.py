"""The pages' cached loaders: dataset tables, health and fingerprints, model choices, the classifier and its
warm-up, validation predictions and saliency maps. They draw nothing but a progress bar or a spinner (and
classifier_or_message its reason); all ML and file work happens in maskdet, these functions only call it and
cache what it returns. Not a page itself."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.logger import get_logger

from app_pages import drawing, permissions
from maskdet import (
    access as access_rules,
    config,
    dataset,
    evaluate,
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


# A dataset folder a page may read: allowed by the mode and under the roots, resolved; else DatasetError
# with the reason, which the pages already show for a folder they cannot use.
def dataset_folder(folder: str) -> str:
    try:
        permissions.access().require("browse")
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
    return [drawing.jpeg(saliency.overlay(im, h, size=min(max(im.size), max_side))) for im, h in zip(pictures, heat)]
