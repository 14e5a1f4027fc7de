"""The Evaluate page: how good the chosen model is on the validation split, and where it goes wrong."""

import os
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import drawing, loaders, permissions, sidebar
from maskdet import config, dataset, evaluate, gallery, infer, models, saliency


# Read top-down: pick the model's predictions, choose a threshold, see the figures, then the errors.
def main():
    st.title("Evaluate")
    permissions.require("evaluate")
    s = sidebar.settings()
    if s.model_path is None:
        loaders.classifier_or_message(None)  # says how to get a model
        return
    trained = models.training_data(s.model_path)
    val_fraction = trained["val_fraction"]
    preds = predictions(s.model_path, s.data_dir, val_fraction)
    if preds is None:
        return
    st.caption(
        f"Model `{s.model_path}` on the validation split of `{s.data_dir}` "
        f"({len(preds):,} images, validation fraction {val_fraction:g}: images the model never trained on)."
    )
    if models.trained_elsewhere(trained, s.data_dir, loaders.load_fingerprint(str(s.data_dir), val_fraction)):
        where = f"`{trained['data']}`" if trained["data"] else "other data"
        st.warning(
            f"This model was trained on {where}, not on the images of this folder (their fingerprints "
            "differ): its validation split here may hold images it trained on, or be a different kind of data."
        )
    y, p = dataset.labels_of(preds), preds["p_mask"].to_numpy()
    if p.std() < 0.01:
        st.warning(
            f"This model gives every image about the same P(mask) ({p.mean():.2f}): it has not learned "
            "to tell the classes apart yet. Train it for more epochs (Train page).",
            icon=":material/warning:",
        )
    threshold = st.slider(
        "Decision threshold: P(mask) at or above it means *with mask*",
        0.01,
        0.99,
        config.DEFAULT_THRESHOLD,
        0.01,
        key="threshold",
    )
    m = evaluate.metrics(y, p, threshold)
    headline(m)
    left, right = st.columns([1, 1])
    left.altair_chart(confusion_chart(m), width="stretch")
    right.markdown("**Per class**")
    right.dataframe(per_class_table(m), width="stretch")
    curve_charts(
        load_curves(str(s.model_path), os.stat(s.model_path).st_mtime, str(s.data_dir), val_fraction), threshold
    )
    error_gallery(s.model_path, evaluate.errors(preds, threshold), evaluate.families(preds, threshold))


# The model's predictions on the validation split (stored on disk once computed, so a restart reads them back),
# or None after saying why there are none: no such folder, no such model file, a file that is no model.
def predictions(model_path: Path, folder: Path, val_fraction: float) -> pd.DataFrame | None:
    try:
        return loaders.load_predictions(str(model_path), os.stat(model_path).st_mtime, str(folder), val_fraction)
    except dataset.DatasetError as exc:
        st.error(f"**Cannot evaluate on this folder.** {exc}", icon=":material/folder_off:")
        st.info("Choose a dataset folder in the sidebar (see the Dataset page).")
    except FileNotFoundError:
        st.error(f"{model_path}: the model file is gone. Pick another model in the sidebar.")
    except infer.ModelError as exc:
        st.error(str(exc))
    return None


# ROC and precision-recall points, computed once per model and folder.
@st.cache_data(show_spinner=False, max_entries=6)
def load_curves(model_path: str, mtime: float, folder: str, val_fraction: float) -> pd.DataFrame:
    preds = loaders.load_predictions(model_path, mtime, folder, val_fraction)
    return evaluate.curves(dataset.labels_of(preds), preds["p_mask"].to_numpy())


# Accuracy, balanced accuracy, ROC AUC and the number of images.
def headline(m: dict):
    cols = st.columns(4)
    cols[0].metric("Accuracy", f"{m['accuracy']:.1%}")
    cols[1].metric("Balanced accuracy", f"{m['balanced_accuracy']:.1%}", help="mean of the two classes' recall")
    cols[2].metric(
        "ROC AUC",
        f"{m['roc_auc']:.3f}" if m["roc_auc"] is not None else "—",
        help="chance that a masked face scores higher than an unmasked one (threshold-free)",
    )
    cols[3].metric("Validation images", f"{m['n']:,}")


# The confusion matrix as a heat map: counts, and each row's rates (recall on the diagonal).
def confusion_chart(m: dict) -> alt.LayerChart:
    rows = []
    for i, true in enumerate(m["classes"]):
        total = sum(m["confusion_matrix"][i]) or 1
        for j, pred in enumerate(m["classes"]):
            count = m["confusion_matrix"][i][j]
            rows.append(
                {
                    "true": config.LABEL_WORDS[true],
                    "predicted": config.LABEL_WORDS[pred],
                    "count": count,
                    "rate": count / total,
                    "label": f"{count:,}",
                    "share": f"{count / total:.1%}",
                }
            )
    frame = pd.DataFrame(rows)
    order = [config.LABEL_WORDS[c] for c in m["classes"]]
    base = alt.Chart(frame, title=f"Confusion matrix at threshold {m['threshold']:.2f}").encode(
        x=alt.X("predicted:N", sort=order, title="predicted", axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("true:N", sort=order, title="true"),
    )
    heat = base.mark_rect().encode(
        color=alt.Color("rate:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None),
        tooltip=["true", "predicted", "count", alt.Tooltip("rate:Q", format=".1%")],
    )
    text_colour = alt.condition(alt.datum.rate > 0.5, alt.value("white"), alt.value("black"))
    counts = base.mark_text(fontSize=22, fontWeight="bold", dy=-10).encode(text="label:N", color=text_colour)
    shares = base.mark_text(fontSize=13, dy=14).encode(text="share:N", color=text_colour)
    return (heat + counts + shares).properties(height=280)


# Precision, recall, F1 and support per class, as a small table.
def per_class_table(m: dict) -> pd.DataFrame:
    table = pd.DataFrame(m["per_class"]).T
    table.index = [config.LABEL_WORDS[c] for c in table.index]
    table["support"] = table["support"].astype(int)
    return table[["precision", "recall", "f1", "support"]].style.format(
        {"precision": "{:.1%}", "recall": "{:.1%}", "f1": "{:.1%}", "support": "{:,}"}
    )


# ROC and precision-recall curves with the operating point (the threshold in use) marked; zoomed by default to
# where the curves bend (a good model's curves are the frame itself on full axes).
def curve_charts(points: pd.DataFrame, threshold: float):
    here = points.iloc[[int((points["threshold"] - threshold).abs().to_numpy().argmin())]].assign(
        label=f"threshold {threshold:.2f}"
    )
    full = st.toggle(
        "Curves over the full range",
        key="curves_full",
        help="Off: zoomed to where the curves bend (maskdet.evaluate.curve_view); on: both axes 0-1",
    )
    view = evaluate.curve_view(points)
    left, right = st.columns(2)
    for col, (x, y, title, zoom) in (
        (left, ("fpr", "tpr", "ROC curve (positive class: with mask)", view["roc"])),
        (right, ("recall", "precision", "Precision-recall (with mask)", view["pr"])),
    ):
        domain = {"x": [0, 1], "y": [0, 1]} if full else zoom
        line = (
            alt.Chart(points, title=title)
            .mark_line(interpolate="step-after", clip=True)
            .encode(
                x=alt.X(
                    f"{x}:Q",
                    scale=alt.Scale(domain=domain["x"]),
                    title={"fpr": "false positive rate", "recall": "recall"}[x],
                ),
                y=alt.Y(
                    f"{y}:Q",
                    scale=alt.Scale(domain=domain["y"]),
                    title={"tpr": "true positive rate", "precision": "precision"}[y],
                ),
                tooltip=[
                    alt.Tooltip("threshold:Q", format=".3f"),
                    alt.Tooltip(f"{x}:Q", format=".3f"),
                    alt.Tooltip(f"{y}:Q", format=".3f"),
                ],
            )
        )
        dot = (
            alt.Chart(here)
            .mark_point(size=140, filled=True, color="#d73027", clip=True)
            .encode(
                x=f"{x}:Q",
                y=f"{y}:Q",
                tooltip=[
                    alt.Tooltip("threshold:Q", format=".3f"),
                    alt.Tooltip(f"{x}:Q", format=".3f"),
                    alt.Tooltip(f"{y}:Q", format=".3f"),
                ],
            )
        )
        text = dot.mark_text(align="left", dx=8, dy=-8, color="#d73027", clip=True).encode(text="label:N")
        col.altair_chart((line + dot + text).properties(height=300), width="stretch")


# The misclassified validation images, most confidently wrong first, with where the model looked.
def error_gallery(model_path: Path, wrong: pd.DataFrame, fam: dict):
    st.subheader(f"Errors ({len(wrong):,})")
    if wrong.empty:
        st.success("No validation image is misclassified at this threshold.")
        return
    if fam["families"]:
        st.caption(
            f"{len(wrong):,} wrong images from **{fam['families_with_errors']:,} of the {fam['families']:,} "
            "photo families** of the validation split. A family is one photo and its near-duplicates "
            "(augmented or re-saved copies), always kept in one split: its copies are usually right or "
            "wrong together, so the families say how many distinct faces the errors are."
        )
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    counts = wrong["error_type"].value_counts()
    kinds = {
        "all": f"all ({len(wrong):,})",
        "false mask": f'false "mask" ({counts.get("false mask", 0):,})',
        "false no-mask": f'false "no mask" ({counts.get("false no-mask", 0):,})',
    }
    kind = (
        left.segmented_control(
            "Show", list(kinds), format_func=kinds.get, default="all", key="error_kind", required=True
        )
        or "all"
    )
    show_saliency = right.toggle(
        "Saliency overlay (Grad-CAM)",
        value=True,
        key="saliency",
        help="Colours where the evidence for the predicted class lies: red strongest",
    )
    shown = wrong if kind == "all" else wrong[wrong["error_type"] == kind]
    if fam["families"] and st.toggle(
        "One image per family",
        value=True,
        key="one_per_family",
        help="Show each family's most confidently wrong image only",
    ):
        shown, copies = evaluate.one_per_family(shown)
    else:
        copies = pd.Series(1, index=shown.index)
    if shown.empty:
        st.info("No errors of this kind.")
        return
    page = drawing.pager(len(shown), 12, key="error_page")
    part, more = shown.iloc[page], list(copies.iloc[page] - 1)
    heat_maps = (
        loaders.load_saliency(str(model_path), os.stat(model_path).st_mtime, tuple(part["path"]), tuple(part["hash"]))
        if show_saliency
        else [None] * len(part)
    )
    rows = list(part.itertuples(index=False))
    for start in range(0, len(rows), 3):
        for col, r, heat, extra in zip(
            st.columns(3), rows[start : start + 3], heat_maps[start : start + 3], more[start : start + 3]
        ):
            with col.container(border=True):
                error_card(r, heat, extra)
    if show_saliency:
        st.caption(
            f"Grad-CAM on the deepest backbone feature map with at least {saliency.MIN_CELLS}x{saliency.MIN_CELLS} "
            "cells: it shows where the evidence "
            "for the (wrong) predicted class lies. Mask errors driven by backgrounds, borders or image quality "
            "rather than the mouth and nose point to a shortcut in the data."
        )


# One error: the file itself at its own size (the browser's fullscreen shows the file, not a resampled copy),
# its heat map at the same size beside it, what the model said, and the whole file name.
def error_card(r, heat: bytes | None, extra: int):
    pictures = st.columns(2) if heat is not None else [st.container()]
    pictures[0].image(
        gallery.original(r.path), output_format="PNG" if r.format == "PNG" else "auto", caption="the file"
    )
    if heat is not None:
        pictures[1].image(heat, caption="Grad-CAM")
    st.markdown(f"true {drawing.label_markdown(r.label)} · P(mask) **{r.p_mask:.2f}**")
    copies = f" (+{extra} wrong {'copy' if extra == 1 else 'copies'})" if extra else ""
    st.caption(drawing.literal(Path(r.path).name) + copies)


main()
