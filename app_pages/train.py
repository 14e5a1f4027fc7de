"""The Train page: start a run, watch it live, compare runs, promote one to the active model.

A run is a folder written by its own process (maskdet.runs); this page only reads it, so a reload,
a second tab or another machine's browser all show the same live run.
"""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import loaders, permissions, sidebar
from maskdet import cards, config, dataset, models, run_times, runs
from maskdet.train_params import TrainParams


# Read top-down: the form, the live run, the list of runs, comparing them, the models.
def main():
    st.title("Train")
    permissions.require("train")
    s = sidebar.settings()
    all_runs = runs.list_runs(s.runs_dir)  # once a rerun; the live fragment re-reads on its own
    params = training_form(s.data_dir, all_runs)
    if params and start(s.data_dir, s.runs_dir, params):
        all_runs = runs.list_runs(s.runs_dir)
    live_run(str(s.runs_dir))
    if not all_runs:
        return
    compare(all_runs)
    run_details(all_runs)
    model_shelf()


BACKBONE_LABELS = {
    "mobilenet_v2": "MobileNetV2, pretrained on ImageNet (recommended)",
    "efficientnet_lite0": "EfficientNet-Lite0, pretrained on ImageNet",
    "mobilenet_scratch": "MobileNet from scratch (random weights: the seed's recipe, slow to learn)",
}
PRESETS = {  # preset -> (epochs, sample limit)
    "Quick try: 1 epoch on 2,000 images": (1, 2000),
    f"Full: {TrainParams.epochs} epochs on every image": (TrainParams.epochs, None),
}


# The presets as offered: each with the time it is expected to take here, from measured speed.
def preset_labels(data_dir: Path, all_runs: list[dict]) -> dict[str, str]:
    try:
        n = len(dataset.list_files(data_dir))
    except Exception:  # no such folder yet: the presets without times
        return {name: name for name in PRESETS}
    labels = {}
    for name, (epochs, limit) in PRESETS.items():
        train = round(min(n, limit or n) * (1 - TrainParams.val_fraction))
        guess = run_times.expected_seconds(
            TrainParams.backbone, TrainParams.input_size, epochs, train, sidebar.settings().runs_dir, listing=all_runs
        )
        labels[name] = f"{name} ({run_times.say_duration(guess[0])} here)" if guess else name
    return labels


# Apply a preset to the form's fields.
def _apply_preset():
    epochs, limit = PRESETS[st.session_state["f_preset"]]
    st.session_state["f_epochs"], st.session_state["f_limit"] = epochs, limit


# The training settings; returns them when the user presses Start, else None.
def training_form(data_dir: Path, all_runs: list[dict]) -> TrainParams | None:
    with st.expander("Start a training run", expanded=not all_runs, icon=":material/play_circle:"):
        st.caption(
            f"Trains a classifier on `{data_dir}` in its own process; you can leave this page or close "
            "the browser, the run goes on. One training at a time. A pretrained backbone first trains "
            "its new head with the backbone frozen, then fine-tunes the whole network at a low rate."
        )
        labels = preset_labels(data_dir, all_runs)
        st.radio(
            "Preset",
            list(PRESETS),
            key="f_preset",
            on_change=_apply_preset,
            horizontal=True,
            index=None,
            format_func=labels.get,
            help="Fills in the epochs and the sample limit below; change them as "
            "you like. Times are measured on this machine: from the runs finished here, or the shipped "
            "model's training.",
        )
        with st.form("train"):
            backbone = st.selectbox(
                "Backbone",
                list(BACKBONE_LABELS),
                format_func=BACKBONE_LABELS.get,
                key="f_backbone",
                help="ImageNet weights come inside the installed packages; nothing is downloaded.",
            )
            a, b, c = st.columns(3)
            epochs = a.number_input("Epochs", 1, 500, TrainParams.epochs, key="f_epochs")
            head_epochs = b.number_input(
                "Head epochs (backbone frozen)",
                0,
                500,
                TrainParams.head_epochs,
                key="f_head_epochs",
                help="Pretrained backbones only: the first epochs "
                "train the new head alone; the rest fine-tune everything.",
            )
            batch = c.select_slider("Batch size", [8, 16, 32, 64, 128, 256], TrainParams.batch_size, key="f_batch")
            a, b, c = st.columns(3)
            lr = a.number_input(
                "Learning rate",
                1e-5,
                1e-1,
                None,
                format="%.4f",
                step=1e-4,
                key="f_lr",
                placeholder="the backbone's default",
                help=f"A pretrained backbone's new head: {config.DEFAULT_HEAD_LEARNING_RATE:g} by "
                f"default; from scratch, the whole network's: {config.DEFAULT_LEARNING_RATE:g}",
            )
            ft_lr = b.number_input(
                "Fine-tuning learning rate",
                1e-6,
                1e-2,
                TrainParams.fine_tune_learning_rate,
                format="%.5f",
                step=1e-5,
                key="f_ft_lr",
                help="Pretrained backbones: the rate once the backbone is unfrozen",
            )
            size = c.select_slider(
                "Input size (px)",
                [96, 128, 160, 192, 224],
                TrainParams.input_size,
                key="f_size",
                help="Pretrained backbones see each face crop resized to this size: larger is slower",
            )
            a, b, c = st.columns(3)
            alpha = a.select_slider(
                "Width (alpha, from scratch)",
                [0.25, 0.5, 0.75, 1.0],
                TrainParams.alpha,
                key="f_alpha",
                help="MobileNet width multiplier: 0.25 is ~4x faster than 1.0",
            )
            val = b.slider("Validation fraction", 0.05, 0.5, TrainParams.val_fraction, 0.05, key="f_val")
            limit = c.number_input(
                "Sample limit (images)",
                100,
                1_000_000,
                value=None,
                step=100,
                key="f_limit",
                placeholder="all images",
                help="Train on a class-balanced sample of about this many images: a quick try",
            )
            augment = st.checkbox("Augment (flips, rotations, zoom, colour and quality changes)", True, key="f_augment")
            go = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")
    if not go:
        return None
    return TrainParams(
        backbone=backbone,
        input_size=int(size),
        epochs=int(epochs),
        head_epochs=int(head_epochs),
        batch_size=int(batch),
        alpha=float(alpha),
        learning_rate=float(lr) if lr else None,
        fine_tune_learning_rate=float(ft_lr),
        val_fraction=float(val),
        limit=int(limit) if limit else None,
        augment=bool(augment),
    )


# Start a run in its own process, or say why not; returns whether it started.
def start(data_dir: Path, runs_dir: Path, params: TrainParams) -> bool:
    try:
        loaders.check_folder(str(data_dir))
        run_dir = runs.start(data_dir, runs_dir, params)
    except runs.RunError as exc:
        st.error(str(exc), icon=":material/block:")
        return False
    except Exception as exc:  # a bad folder (DatasetError) or an unwritable runs folder
        st.error(f"Could not start the run: {exc}", icon=":material/error:")
        return False
    st.toast(f"Started run {run_dir.name}", icon=":material/play_arrow:")
    return True


# The run now going (or the latest one), re-read from its folder every 2 seconds.
@st.fragment(run_every=2)
def live_run(runs_dir: str):
    listing = runs.list_runs(Path(runs_dir))  # once a fragment rerun: the latest run and the table below
    run = next((r for r in listing if r["state"] in ("queued", "running")), None)
    latest = run or next(iter(listing), None)
    seen = st.session_state.get("live_seen")
    now_seen = (latest["run_id"], latest["state"]) if latest else None
    st.session_state["live_seen"] = now_seen
    if seen and now_seen and seen != now_seen:
        # a run started, began training or ended: the parts of the page outside this fragment (run details,
        # comparisons, the model picker) show states too, so they are drawn again
        if now_seen[1] in runs.FINAL:
            loaders.model_options.clear()
        st.rerun(scope="app")
    if latest is None:
        st.info(
            "No training runs yet. Start one above: the quick-try preset shows within a minute whether the "
            "data and settings learn.",
            icon=":material/model_training:",
        )
        return
    st.subheader(f"{'Current' if run else 'Latest'} run: {latest['run_id']}")
    run_dir = Path(latest["path"])
    status = runs.status(run_dir)
    records = runs.metrics(run_dir)
    progress(run_dir, status, records)
    curves(records, status)
    run_table(listing)  # in the fragment, so the list's states stay current too


# State, progress bar, elapsed and remaining time, Cancel; the error of a failed run.
def progress(run_dir: Path, status: dict, records: list[dict]):
    state = status["state"]
    epochs = status.get("epochs") or 0
    where_now = run_times.progress(status, records)
    step, total = where_now["step"], where_now["total"]
    icon = {
        "queued": ":material/hourglass_top:",
        "running": ":material/directions_run:",
        "done": ":green[:material/check_circle:]",
        "failed": ":red[:material/error:]",
        "cancelled": ":orange[:material/stop_circle:]",
    }.get(state, "")
    phase = f" · {status['phase']}" if status.get("phase") and state == "running" else ""
    where = f" · epoch {status.get('epoch') or status.get('completed_epochs') or 0}/{epochs}" if epochs else ""
    st.markdown(f"**{icon} {state}**{phase}{where}" + (f" · step {step}/{total}" if total else ""))
    if state in ("queued", "running"):
        st.progress(
            min(1.0, step / total) if total else 0.0,
            text=f"elapsed {clock(status.get('elapsed_s'))} · left {clock(where_now['left_s'])}",
        )
        if status.get("cancel_requested"):
            st.warning("Cancelling: the run stops after this batch and keeps what it learned.")
        elif st.button("Cancel run", icon=":material/stop_circle:", key="cancel"):
            runs.cancel(run_dir)
            st.rerun(scope="fragment")
    elif state == "failed":
        st.error(f"**The run failed.** {status.get('error') or 'no reason recorded'}", icon=":material/error:")
    else:
        acc = status.get("val_accuracy")
        st.caption(
            f"finished in {clock(status.get('elapsed_s'))}"
            + (f" · validation accuracy {acc:.1%}" if isinstance(acc, float) else "")
            + (" · cancelled: its model holds what it learned until then" if state == "cancelled" else "")
        )


# 75 -> "1:15", 3700 -> "1:01:40", None -> "…".
def clock(seconds) -> str:
    if seconds is None:
        return "…"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


# Loss and accuracy: every batch (thin line) and every epoch on train and validation (points).
def curves(records: list[dict], status: dict):
    if not records:
        st.caption("Waiting for the first batch ..." if status["state"] in ("queued", "running") else "No metrics.")
        return
    frame = metric_frame(records)
    left, right = st.columns(2)
    for col, metric in ((left, "loss"), (right, "accuracy")):
        col.altair_chart(curve_chart(frame[frame["metric"] == metric], metric.capitalize()), width="stretch")


# The curves' series (maskdet.runs.curve_points) as the legend names them.
SERIES = {"batch": "train (batch)", "train": "train (epoch)", "validation": "validation"}


# metrics.jsonl records -> a long table: step, epoch, metric, value, series (as the legend names them).
def metric_frame(records: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(runs.curve_points(records), columns=["step", "epoch", "metric", "value", "series"])
    frame["series"] = frame["series"].map(SERIES)
    return frame.dropna(subset=["value"])


# One metric's chart: thin batch line, epoch lines with points.
def curve_chart(frame: pd.DataFrame, title: str) -> alt.LayerChart:
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(
            domain=["train (batch)", "train (epoch)", "validation"], range=["#9ecae9", "#1f77b4", "#ff7f0e"]
        ),
        legend=alt.Legend(orient="bottom", title=None),
    )
    base = alt.Chart(frame, title=title).encode(
        x=alt.X("step:Q", title="step (batch)", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=colour,
        tooltip=["series", "epoch", "step", alt.Tooltip("value:Q", format=".4f")],
    )
    batch = base.transform_filter(alt.datum.series == "train (batch)").mark_line(strokeWidth=1, opacity=0.8)
    epoch = base.transform_filter(alt.datum.series != "train (batch)").mark_line(point=True, strokeWidth=2)
    return (batch + epoch).properties(height=340)


# Every run with its state, settings and result.
def run_table(all_runs: list[dict]):
    st.subheader("Runs")
    rows = []
    for r in all_runs:
        p = runs.params(Path(r["path"]))
        evaluation = models.run_evaluation(Path(r["path"])) or {}
        doubt = models.degenerate(evaluation)
        rows.append(
            {
                "run": r["run_id"],
                "state": r["state"],
                "epochs": f"{r.get('completed_epochs') or 0}/{r.get('epochs') or p.get('epochs')}",
                "balanced accuracy": evaluation.get("balanced_accuracy"),
                "val accuracy": r.get("val_accuracy"),
                "warning": f"⚠ {doubt}" if doubt else "",
                "train images": r.get("train_images"),
                "backbone": p.get("backbone", "mobilenet_scratch"),
                "batch": p.get("batch_size"),
                "learning rate": p.get("learning_rate"),
                "limit": p.get("limit"),
                "time": clock(r.get("elapsed_s")) if r.get("elapsed_s") else "",
                "error": r.get("error") or "",
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            # numbers, not bars: a model that always answers the majority class reads 62.7% and must not look good
            "balanced accuracy": st.column_config.NumberColumn(
                "balanced accuracy",
                format="percent",
                help="the mean of the two classes' recalls: 50% for a model that gives every face the same answer",
            ),
            "val accuracy": st.column_config.NumberColumn("val accuracy", format="percent"),
            "warning": st.column_config.TextColumn("warning", width="medium"),
            "error": st.column_config.TextColumn("error", width="large"),
        },
    )


# Curves of several runs side by side: validation accuracy and loss per epoch.
def compare(all_runs: list[dict]):
    with_epochs = [r["run_id"] for r in all_runs if r.get("completed_epochs")]
    if len(with_epochs) < 1:
        return
    st.subheader("Compare runs")
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    chosen = left.multiselect("Runs", with_epochs, default=with_epochs[:3], key="compare_runs")
    with_train = right.toggle("Training curves too", key="compare_train", help="dashed lines")
    rows = [
        {"run": run_id, "epoch": p["epoch"], "metric": p["metric"], "split": p["series"], "value": p["value"]}
        for run_id in chosen
        for p in runs.curve_points(runs.metrics(Path(sidebar.settings().runs_dir) / run_id))
        if p["series"] == "validation" or (with_train and p["series"] == "train")
    ]
    if not rows:
        st.caption("No finished epochs in these runs.")
        return
    frame = pd.DataFrame(rows)
    left, right = st.columns(2)
    for col, metric in ((left, "accuracy"), (right, "loss")):
        col.altair_chart(
            alt.Chart(frame[frame["metric"] == metric], title=f"Validation {metric} per epoch")
            .mark_line(point=True)
            .encode(
                x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1, format="d")),
                y=alt.Y(
                    "value:Q",
                    title=None,
                    scale=alt.Scale(zero=False),
                    axis=alt.Axis(format=".0%" if metric == "accuracy" else ".3f"),
                ),
                # a categorical palette: the default for few runs is two close blues
                color=alt.Color(
                    "run:N",
                    scale=alt.Scale(scheme="tableau10"),
                    legend=alt.Legend(orient="bottom", title=None, columns=2),
                ),
                strokeDash=alt.StrokeDash("split:N", sort=["validation", "train"], legend=None),
                tooltip=["run", "split", "epoch", alt.Tooltip("value:Q", format=".4f")],
            )
            .properties(height=340),
            width="stretch",
        )


# One run's settings, evaluation and error; a finished run can become the active model.
def run_details(all_runs: list[dict]):
    st.subheader("Run details")
    ids = [r["run_id"] for r in all_runs]
    by_id = {r["run_id"]: r for r in all_runs}
    # The choices are the run ids alone: the browser keeps a keyed selectbox's label as first drawn, so a
    # state in it would go on saying "(queued)" after the run has started or finished.
    run_id = st.selectbox("Run", ids, key="detail_run")
    run_dir = Path(by_id[run_id]["path"])
    r = runs.status(run_dir)  # read again: the list may be seconds old
    st.markdown(
        f"Run {run_id}: **{r['state']}**"
        + (f" · epoch {r.get('completed_epochs') or 0}/{r['epochs']}" if r.get("epochs") else "")
    )
    left, right = st.columns(2)
    left.markdown("**Settings**")
    settings = pd.Series({k: str(v) for k, v in runs.params(run_dir).items()}, name="value")
    left.dataframe(settings, width="stretch")
    evaluation = models.run_evaluation(run_dir)
    doubt = models.degenerate(evaluation)
    if evaluation:
        right.markdown("**Validation**")
        a, b = right.columns(2)
        a.metric(
            "Balanced accuracy",
            f"{evaluation.get('balanced_accuracy', 0):.1%}",
            help="the mean of the two classes' recalls: 50% for a model that gives every face the same answer",
        )
        b.metric("Accuracy", f"{evaluation['accuracy']:.1%}", help=f"{evaluation.get('n')} images")
        if evaluation.get("confusion_matrix"):
            right.dataframe(
                pd.DataFrame(
                    evaluation["confusion_matrix"],
                    index=[f"true {c}" for c in config.CLASS_NAMES],
                    columns=[f"predicted {c}" for c in config.CLASS_NAMES],
                ),
                width="stretch",
            )
    if doubt:
        st.warning(
            f"**This model does not tell the classes apart**: {doubt}. Its accuracy only repeats the "
            "share of the majority class.",
            icon=":material/warning:",
        )
    if r.get("error"):
        st.error(r["error"])
    if r.get("has_model") and r["state"] in ("done", "cancelled"):
        anyway = doubt and st.checkbox(
            "Promote it anyway: I know it answers (almost) the same for every face", key="promote_anyway"
        )
        if st.button(
            "Make this the active model",
            icon=":material/publish:",
            key="promote",
            disabled=bool(doubt) and not anyway,
            help=f"Copies its model.keras to {config.DEFAULT_MODEL} and writes a model card; "
            "the current active model is kept as the previous one."
            + (" Tick the box above first: this model does not tell the classes apart." if doubt else ""),
        ):
            try:
                models.promote(run_dir, force=bool(anyway))
                with st.spinner(
                    "Measuring the new model for its card (the validation split, as the command line does)..."
                ):
                    try:
                        models.measure_card()
                    except Exception as exc:  # promoted all the same: the card keeps the run's own figures
                        st.session_state["promote_warning"] = f"Its card could not be completed here: {exc}"
                loaders.model_options.clear()
                st.session_state["pending_model_path"] = str(config.DEFAULT_MODEL)
                st.session_state["promote_message"] = f"Run {run_id} is now the active model."
                st.rerun()
            except models.PromotionError as exc:
                st.error(str(exc))
    if msg := st.session_state.pop("promote_message", None):
        st.success(msg, icon=":material/check_circle:")
    if msg := st.session_state.pop("promote_warning", None):
        st.warning(msg, icon=":material/warning:")


# The models folder: the active and previous model, and a rollback.
def model_shelf():
    st.subheader("Models")
    shelf = models.list_models()
    if not shelf:
        st.caption(f"No models in `{config.MODELS_DIR}` yet: promote a finished run above.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "file": m["name"],
                    "card": cards.card_summary(m["card"]),
                    "size (MB)": round((m["bytes"] or 0) / 1e6, 1),
                }
                for m in shelf
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    if msg := st.session_state.pop("rollback_message", None):
        st.success(msg, icon=":material/undo:")
    if models.previous_model().exists():
        rollback_form(shelf)


# Swap the active and the previous model, once the user has ticked that they mean it. The box and the button
# are keyed by the folder's version: after a swap both are new, so a second press (or a click queued meanwhile)
# cannot swap back unseen.
def rollback_form(shelf: list[dict]):
    active, previous = shelf[0], next(m for m in shelf if Path(m["path"]) == models.previous_model())
    st.markdown(
        f"**Roll back** swaps the two: the previous model (`{previous['name']}`: "
        f"{cards.card_summary(previous['card'])}) becomes the active one, and the active model "
        f"(`{active['name']}`: {cards.card_summary(active['card'])}) becomes the previous one. "
        "Rolling back again swaps them back."
    )
    version = models.version()
    sure = st.checkbox("Yes, swap the active and the previous model", key=f"rollback_sure_{version}")
    if st.button(
        "Roll back to the previous model", icon=":material/undo:", key=f"rollback_{version}", disabled=not sure
    ):
        models.rollback()
        loaders.model_options.clear()
        st.session_state["rollback_message"] = (
            f"Rolled back: the active model is now the one of {cards.card_summary(previous['card'])}; the one of "
            f"{cards.card_summary(active['card'])} is kept as the previous model."
        )
        st.rerun()


main()
