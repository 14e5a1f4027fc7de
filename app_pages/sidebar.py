"""The sidebar every page shares: the dataset folder, the model in use and the runs folder, and the settings
it leaves for the pages (settings()). Not a page itself (streamlit_app.py draws it before every page)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from app_pages import loaders, permissions
from maskdet import access as access_rules, cards, config, dataset, models


@dataclass(frozen=True)
class Settings:
    """The choices made in the sidebar, read by every page."""

    data_dir: Path
    runs_dir: Path
    model_path: Path | None


# Draw the shared sidebar (dataset folder, model, runs folder) and return what it says. A classify-only
# server shows the model picker only (the active and previous models, no runs, no folders).
def sidebar(acc: access_rules.Access | None = None) -> Settings:
    acc = acc or permissions.access()
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
            runs_dir = permissions.confined(ss["runs_dir"], "Runs folder")
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
        found = loaders.check_folder(folder)
    except dataset.DatasetError as exc:
        st.error(str(exc), icon=":material/folder_off:")
        return
    st.caption(" · ".join(f"{cls}: {n} folder{'s' if n != 1 else ''}" for cls, n in found.items()))


# Pick the model the Evaluate and Classify pages use: the active one, the previous one, or a run's
# (runs_dir None: the models folder's only).
def model_picker(runs_dir: Path | None) -> Path | None:
    options = loaders.model_options(
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
