"""The Dataset page: where the images are, what they look like, and what could mislead a model."""

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from app_pages import drawing, loaders, permissions, sidebar
from maskdet import config, dataset, gallery, kaggle


# Read top-down: get the data, summarise it, show its problems, let the user browse it.
def main():
    st.title("Dataset")
    permissions.require("browse")
    s = sidebar.settings()
    download_form()
    table = table_or_message(s.data_dir)
    if table is None:
        return
    report = loaders.load_health(str(s.data_dir))
    # Only the open tab is drawn: charts laid out in a hidden tab get no width, and it saves thumbnails.
    overview, health_tab, browse_tab = st.tabs(
        ["Overview", "Data health", "Browse images"], key="dataset_tab", on_change="rerun", bind="query-params"
    )
    if overview.open:
        with overview:
            summary(report)
            charts(table)
    if health_tab.open:
        with health_tab:
            health(report, table)
            near_duplicates(table)
    if browse_tab.open:
        with browse_tab:
            browse(table)


# A form that downloads the Kaggle dataset with the user's credentials and then selects it.
def download_form():
    if msg := st.session_state.pop("download_message", None):
        st.success(msg)
    if st.session_state.pop("download_cancelled", False):
        st.info("Download cancelled: the download process was stopped and what it had written removed.")
    with st.expander("Download the Kaggle dataset", icon=":material/download:"):
        st.caption(
            f"Fetches [{config.KAGGLE_DATASET}](https://www.kaggle.com/datasets/{config.KAGGLE_DATASET}) "
            "(about 330 MB). Your API key comes from Kaggle > Settings > API > Create New Token; "
            "it goes to the download process alone and is not stored."
        )
        with st.form("kaggle"):
            left, right = st.columns(2)
            username = left.text_input("Kaggle username", key="kaggle_user")
            key = right.text_input("Kaggle API key", type="password", key="kaggle_key")
            dest = st.text_input("Download into", value=str(config.LOCAL_DATA_DIR))
            submitted = st.form_submit_button("Download", icon=":material/download:")
    if submitted:
        download(dest, username, key)


# Run the download with its progress in counts; on success make the new folder the dataset folder. A failure
# says why at once, outside the status box. Any click (Cancel, another widget) reruns the page, which stops
# this run and with it the download process (maskdet.kaggle kills it and removes what it wrote).
def download(dest: str, username: str, key: str):
    folder = permissions.confined(dest, "Download folder")  # only under the allowed roots, like any dataset folder
    if folder is None:
        return
    dest = str(folder)
    with st.status(f"Downloading {config.KAGGLE_DATASET} ...", expanded=True) as status:
        st.button(
            "Cancel download",
            key="cancel_download",
            icon=":material/cancel:",
            on_click=lambda: st.session_state.update(download_cancelled=True),
        )
        bar = st.progress(0.0, text="Contacting Kaggle; a full download takes a few minutes on a good connection.")
        try:
            folder = kaggle.download(
                dest,
                username.strip() or None,
                key.strip() or None,
                progress=lambda done, total, what: bar.progress(
                    min(done / total, 1.0) if total else 0.0, text=kaggle.progress_words(done, total, what)
                ),
            )
        except dataset.DatasetError as exc:
            status.update(label="Download failed", state="error", expanded=False)
            failed = str(exc)
        else:
            failed = None
            status.update(label=f"Downloaded into {folder}", state="complete", expanded=False)
    if failed:
        st.error(f"**The download failed.** {failed}", icon=":material/error:")
        return
    st.session_state["pending_data_dir"] = str(folder)
    st.session_state["download_message"] = f"Downloaded the dataset into `{folder}`; it is now the dataset folder."
    loaders.load_table.clear()
    st.rerun()


# The dataset table, or None after saying clearly why the folder cannot be used.
def table_or_message(folder: Path) -> pd.DataFrame | None:
    try:
        return loaders.load_table(str(folder))
    except dataset.DatasetError as exc:
        st.error(f"**This folder cannot be used as a dataset.** {exc}", icon=":material/folder_off:")
        st.info(
            "Type another folder in the sidebar (one sub-folder per class: "
            f"{' / '.join(config.CLASS_NAMES)}), or download the Kaggle dataset above."
        )
        return None


# Headline figures: files, skipped files, classes, split.
def summary(report: dict):
    cols = st.columns(5)
    cols[0].metric("Files", f"{report['files']:,}", help="every file in the class folders, whatever its name")
    cols[1].metric(
        "Skipped",
        f"{len(report['skipped']):,}",
        help="files not used (not an image, unreadable, too small, hidden...): listed under Data health",
    )
    for col, cls in zip(cols[2:4], config.CLASS_NAMES):
        col.metric(config.LABEL_WORDS[cls].capitalize(), f"{report['class_counts'][cls]:,}")
    cols[4].metric("Class balance", f"{report['balance']:.0%}", help="smaller class / larger class")
    split = report["split_counts"]
    st.caption(
        f"{report['readable']:,} of {report['files']:,} files are images in use (told by their content, "
        f"not their names). Split (near-duplicates kept together): train {sum(split['train'].values()):,} · "
        f"validation {sum(split['val'].values()):,} images, remembered for this folder: files added later join "
        "their copies' side or are split by their content, and the old ones stay where they were."
    )


# Class balance per split, and image size and sharpness by class.
def charts(table: pd.DataFrame):
    good = dataset.usable(table)
    left, mid, right = st.columns(3)
    counts = good.groupby(["label", "split"]).size().rename("images").reset_index()
    left.altair_chart(
        alt.Chart(counts, title="Class balance by split")
        .mark_bar()
        .encode(
            x=alt.X("images:Q", title="images"),
            y=alt.Y("label:N", title=None),
            color=alt.Color("split:N", scale=alt.Scale(domain=["train", "val"], range=["#4c78a8", "#f58518"])),
            tooltip=["label", "split", "images"],
        )
        .properties(height=300),
        width="stretch",
    )
    mid.altair_chart(histogram(good, "width", "Image width by class (px)"), width="stretch")
    right.altair_chart(histogram(good, "sharpness", "Sharpness by class (mean |Laplacian|)"), width="stretch")
    st.caption(
        "Faces of the two classes should look alike apart from the mask. Where a class has its own "
        "image sizes or quality, a model can learn that instead; see Data health."
    )


# Overlaid histograms of one column per class, binned here so the chart stays small.
def histogram(good: pd.DataFrame, column: str, title: str) -> alt.Chart:
    values = good[column].astype(float)
    bins = pd.cut(values, bins=30)
    hist = good.assign(bin=bins).groupby(["label", "bin"], observed=False).size().rename("images").reset_index()
    hist["start"] = hist["bin"].map(lambda b: b.left).astype(float)
    hist["end"] = hist["bin"].map(lambda b: b.right).astype(float)
    return (
        alt.Chart(hist.drop(columns="bin"), title=title)
        .mark_bar(opacity=0.55)
        .encode(
            x=alt.X("start:Q", title=None),
            x2="end:Q",
            y=alt.Y("images:Q", stack=None, scale=alt.Scale(type="sqrt"), title="images (square-root scale)"),
            y2=alt.datum(0),
            color=alt.Color("label:N", scale=drawing.CLASS_SCALE, legend=alt.Legend(orient="bottom", title=None)),
            tooltip=["label", alt.Tooltip("start:Q", format=".1f"), alt.Tooltip("end:Q", format=".1f"), "images"],
        )
        .properties(height=300)
    )


# The findings of maskdet.health: warnings, duplicates, skipped files, shortcut properties.
def health(report: dict, table: pd.DataFrame):
    if report["warnings"]:
        for w in report["warnings"]:
            st.warning(w, icon=":material/warning:")
    else:
        st.success("No warnings: classes balanced, no shortcut property found.", icon=":material/check_circle:")
    cols = st.columns(4)
    cols[0].metric(
        "Exact duplicate files",
        report["exact_duplicate_files"],
        help="files with the same bytes as another file (beyond the first copy)",
    )
    cols[1].metric(
        "Near-duplicate groups",
        f"{report['near_duplicate_groups']:,}",
        help="copies of one photo (re-saved, resized, flipped, rotated, shifted, zoomed, cropped, blurred or "
        "pixelated), each link verified by matching keypoints or aligned pixels; a group never straddles the split",
    )
    cols[2].metric("Images in such groups", f"{report['images_in_near_duplicate_groups']:,}")
    cols[3].metric(
        "Label conflicts",
        len(report["label_conflicts"]),
        help="copies of one photo filed under both labels: one of the labels is wrong",
    )
    left, right = st.columns([3, 2])
    shortcuts = pd.DataFrame(report["shortcuts"])
    shortcuts["verdict"] = np.where(shortcuts["shortcut"], "a shortcut", "fine")
    left.altair_chart(
        alt.Chart(shortcuts, title="How well one property alone tells the classes apart")
        .mark_bar()
        .encode(
            x=alt.X(
                "separability:Q",
                scale=alt.Scale(domain=[0.5, 1], clamp=True),
                axis=alt.Axis(format="%"),
                title="image pairs told apart (50% = chance)",
            ),
            x2=alt.datum(0.5),
            y=alt.Y("property:N", title=None, sort="-x"),
            color=alt.Color(
                "verdict:N", scale=alt.Scale(domain=["a shortcut", "fine"], range=["#d73027", "#4c78a8"]), legend=None
            ),
            tooltip=["property", alt.Tooltip("separability:Q", format=".1%")],
        )
        .properties(height=alt.Step(28)),
        width="stretch",
    )
    left.caption("Red: 75% or more, a property a model can learn instead of masks.")
    right.markdown("**Per class (median)**")
    medians = pd.DataFrame(report["per_class"]).T[["median_width", "median_height", "median_sharpness"]]
    medians.columns = ["width", "height", "sharpness"]
    right.dataframe(medians.astype(float).round(1), width="stretch")
    if report["skipped"]:
        skipped_files(report)
    if report["label_conflicts"]:
        label_conflicts(report["label_conflicts"])


# Copies of one photo filed under both labels, each conflict with its images, so the wrong label can be fixed.
def label_conflicts(conflicts: list[dict]):
    st.markdown(
        f"**Label conflicts ({len(conflicts):,})**: exact or near copies of one photo filed under both "
        "labels; each is kept on one side of the split, and one of its labels is wrong."
    )
    for n, c in enumerate(conflicts[:20]):
        st.caption(f"Conflict {n + 1} · {c['split']}")
        drawing.image_grid(
            [gallery.thumbnail(f["path"], 128) for f in c["files"]],
            [f"{drawing.short_name(f['path'])} · {f['label']}" for f in c["files"]],
            columns=8,
        )
    if len(conflicts) > 20:
        st.caption(f"... and {len(conflicts) - 20} more (`python -m maskdet scan --data DIR` lists them all).")


# Every file of the class folders that is not used, counted by reason and listed with the reason.
def skipped_files(report: dict):
    st.markdown(
        f"**Skipped files ({len(report['skipped']):,} of {report['files']:,})**, not used for training or evaluation:"
    )
    left, right = st.columns([1, 3])
    left.dataframe(
        pd.DataFrame(list(report["skipped_by_reason"].items()), columns=["reason", "files"]),
        hide_index=True,
        width="stretch",
    )
    right.dataframe(
        pd.DataFrame(report["skipped"], columns=["path", "label", "reason", "error"]),
        hide_index=True,
        width="stretch",
        column_config={
            "path": st.column_config.TextColumn("file", width="large"),
            "error": st.column_config.TextColumn("why"),
        },
    )


# Pick a near-duplicate group and look at its images (groups with both labels first).
def near_duplicates(table: pd.DataFrame):
    st.subheader("Near-duplicate groups")
    good = dataset.usable(table)
    groups = (
        good[good["group_size"] > 1]
        .groupby("group")
        .agg(
            size=("path", "size"),
            labels=("label", lambda s: ", ".join(sorted(set(s)))),
            split=("split", "first"),
            both=("label", "nunique"),
        )
        .reset_index()
    )
    if groups.empty:
        st.info("No near-duplicates: every image is unlike every other.")
        return
    groups = groups.sort_values(["both", "size"], ascending=False).reset_index(drop=True)
    st.caption(
        "Each group is one photo and its copies (re-saved, resized, flipped, rotated, shifted, zoomed, cropped, "
        "blurred or pixelated), every link verified by matching keypoints or aligned pixels. A group is kept in "
        "one split so validation "
        "never sees a copy of a training face; groups filed under both labels come first."
    )
    labels = {i: f"#{i + 1}: {r['size']} images · {r['labels']} · {r['split']}" for i, r in groups.iterrows()}
    pick = st.selectbox(f"Group ({len(groups):,})", list(labels), format_func=labels.get, key="dup_group")
    rows = good[good["group"] == groups.loc[pick, "group"]].sort_values("path")
    drawing.image_grid(
        [gallery.thumbnail(p, 128) for p in rows["path"]],
        [f"{drawing.short_name(p)} · {label}" for p, label in zip(rows["path"], rows["label"])],
        columns=8,
    )


# A paged grid of thumbnails, filtered by class and split, with file name, size and label.
def browse(table: pd.DataFrame):
    left, mid, right = st.columns([2, 2, 2])
    classes = left.pills(
        "Class",
        list(config.CLASS_NAMES),
        selection_mode="multi",
        default=list(config.CLASS_NAMES),
        key="browse_class",
        on_change=_first_page,
    )
    splits = mid.pills(
        "Split",
        ["train", "val", "skipped"],
        selection_mode="multi",
        default=["train", "val", "skipped"],
        key="browse_split",
        on_change=_first_page,
    )
    order = right.selectbox(
        "Order",
        ["file name", "smallest first", "largest first", "least sharp first"],
        key="browse_order",
        on_change=_first_page,
    )
    if not classes or not splits:
        st.info(
            f"Pick at least one {'class' if not classes else 'split'} above to see its images.",
            icon=":material/filter_alt:",
        )
        return
    split_col = table["split"].fillna("skipped")
    rows = table[table["label"].isin(classes or []) & split_col.isin(splits or [])]
    rows = {
        "file name": rows.sort_values("path"),
        "smallest first": rows.sort_values(["width", "path"]),
        "largest first": rows.sort_values(["width", "path"], ascending=[False, True]),
        "least sharp first": rows.sort_values(["sharpness", "path"]),
    }[order]
    part = rows.iloc[drawing.pager(len(rows), 36, key="browse_page")]
    captions = [caption(r) for r in part.itertuples(index=False)]
    drawing.image_grid([picture(r) for r in part.itertuples(index=False)], captions, columns=6)


# Back to the first page: another filter or order makes the page number shown meaningless.
def _first_page():
    st.session_state["browse_page"] = 1


# A thumbnail; a file that is no image (or a hidden one) gets a placeholder and is never read.
def picture(row):
    if getattr(row, "skipped", None) in ("not an image", "hidden file", "empty file"):
        return gallery.placeholder(128, row.skipped)
    return gallery.thumbnail(row.path, 128)


# "name · 128×128 · 8 KB · with_mask/val" for one table row; a skipped file shows why instead of a size.
def caption(row) -> str:
    reason = getattr(row, "skipped", None)
    if isinstance(row.error, str):
        size = reason if isinstance(reason, str) else "unreadable"
    else:
        size = f"{int(row.width)}×{int(row.height)}"
    split = row.split if isinstance(row.split, str) else "—"  # skipped files have no split
    return f"{drawing.short_name(row.path)} · {size} · {row.bytes / 1024:.0f} KB · {row.label} · {split}"


main()
