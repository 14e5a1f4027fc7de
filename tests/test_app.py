"""The dashboard in Streamlit's AppTest: every page renders on real data, and the things users rely on work."""

import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from PIL import Image
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from maskdet import config, dataset, files, runs

APP = "../streamlit_app.py"  # AppTest resolves it against this file
TIMEOUT = 300  # pages import TensorFlow and scan 11,616 images (a cold scan with copy verification takes ~110 s here)


@pytest.fixture(autouse=True, scope="module")
def fresh_caches():
    """st.cache_data and st.cache_resource outlive an AppTest: these tests start and end without them.
    Within the module they are shared, as they are between a user's pages (the dataset is scanned once);
    every cached loader is keyed by folder and file version, so tests cannot see each other's models."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def app(page: str, data_dir, runs_dir, model_path=None, **state) -> AppTest:
    """The app on `page` (e.g. "train") with the sidebar settings given, not yet run."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(f"app_pages/{page}.py")  # before the first run: the default page would scan first
    at.session_state["data_dir"] = str(data_dir)
    at.session_state["runs_dir"] = str(runs_dir)
    if model_path:
        at.session_state["model_path"] = str(model_path)
    for key, value in state.items():
        at.session_state[key] = value
    return at


def texts(at: AppTest) -> str:
    """Everything the page says in Markdown, captions, alerts and metrics, as one string."""
    parts = [
        e.value
        for kind in ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title")
        for e in getattr(at, kind)
    ]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(str(p) for p in parts)


def charts(at: AppTest) -> dict[str, pd.DataFrame]:
    """The page's Altair charts: title -> the rows the chart draws (Streamlit ships them as Arrow)."""
    found = {}
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec.get("title") or next((layer["title"] for layer in spec.get("layer", []) if "title" in layer), "")
        title = title.get("text", "") if isinstance(title, dict) else title
        frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.proto.datasets]
        found[title] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return found


def button(at: AppTest, label: str):
    """The button (form submit buttons included) that says `label`."""
    return next(b for b in at.button if b.label == label)


def no_exceptions(at: AppTest):
    assert not at.exception, "\n".join(e.value + "\n" + "\n".join(e.stack_trace) for e in at.exception)


@pytest.mark.slow
def test_dataset_page_shows_counts_charts_health_and_images(facemask_dir, tmp_path, no_models):
    at = app("dataset", facemask_dir, tmp_path / "runs").run()  # one scan; the tabs below reuse it
    no_exceptions(at)
    assert "Files: 11,616" in texts(at) and "Skipped: 0" in texts(at)
    drawn = charts(at)
    assert drawn["Class balance by split"]["images"].sum() == 11616
    assert set(drawn["Image width by class (px)"]["label"]) == set(config.CLASS_NAMES)

    at.session_state["dataset_tab"] = "Data health"
    at.run()
    no_exceptions(at)
    said = texts(at)
    assert "image width alone tells with_mask from without_mask" in said
    table = dataset.scan(facemask_dir)  # the page's own scan, from the cache: the page shows the core's figures
    n_groups, biggest = int((table.groupby("group").size() > 1).sum()), int(table["group_size"].max())
    assert 600 < n_groups < 900 and biggest > 20  # copies of one photo, not one chain of look-alikes
    assert f"Near-duplicate groups: {n_groups}" in said and "Label conflicts: 0" in said
    group = at.selectbox(key="dup_group")
    assert group.options[0].startswith(f"#1: {biggest} images") and len(at.get("image")) == biggest
    last = group.options[-1]  # options are shown as "#<n>: 2 images · ..."; the value is the group's index
    group.set_value(len(group.options) - 1).run()  # click through to another group: its images replace the first
    assert len(at.get("image")) == int(last.split(": ")[1].split(" ")[0])

    at.session_state["dataset_tab"] = "Browse images"
    at.run()
    no_exceptions(at)
    assert "showing 1-36 of 11,616" in texts(at) and len(at.get("image")) == 36
    at.pills(key="browse_class").set_value(["without_mask"]).run()
    at.pills(key="browse_split").set_value(["val"]).run()
    bare_val = int(((table["label"] == "without_mask") & (table["split"] == "val")).sum())
    assert 900 < bare_val < 1300 and f"of {bare_val:,}" in texts(at)
    assert all(" · without_mask · val" in img.proto.imgs[0].caption for img in at.get("image"))


def test_a_small_dataset_with_skipped_files_is_shown_in_every_tab(tiny_dataset, tmp_path, no_models):
    folder = tiny_dataset / "with_mask"
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 half a jpeg")
    (folder / "forbidden.jpg").write_text("<html>403 Forbidden</html>")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    Image.open(folder / "face_000.jpg").save(folder / 'scraped.png"', format="PNG")  # an image, whatever its name
    at = app("dataset", tiny_dataset, tmp_path / "runs").run()
    no_exceptions(at)
    said = texts(at)
    assert "Files: 84" in said and "Skipped: 3" in said and "With mask: 41" in said
    assert "81 of 84 files are images in use" in said
    at.session_state["dataset_tab"] = "Data health"
    at.run()
    no_exceptions(at)
    said = texts(at)
    assert "2 of the 84 files are skipped (1 not an image, 1 unreadable)" in said
    assert "Skipped files (3 of 84)" in said
    by_reason, files = (df.value for df in at.dataframe[-2:])
    assert dict(zip(by_reason["reason"], by_reason["files"])) == {"unreadable": 1, "not an image": 1, "hidden file": 1}
    assert dict(zip(files["path"].map(lambda p: Path(p).name), files["reason"])) == {
        "broken.jpg": "unreadable",
        "forbidden.jpg": "not an image",
        ".DS_Store": "hidden file",
    }
    at.session_state["dataset_tab"] = "Browse images"
    at.run()
    no_exceptions(at)
    at.pills(key="browse_split").set_value(["skipped"]).run()
    assert [img.proto.imgs[0].caption for img in at.get("image")] == [
        ".DS_Store · hidden file · 0 KB · with_mask · —",
        "broken.jpg · unreadable · 0 KB · with_mask · —",
        "forbidden.jpg · not an image · 0 KB · with_mask · —",
    ]


def test_a_wrong_dataset_folder_and_a_missing_model_are_explained(tmp_path, no_models):
    at = app("dataset", tmp_path / "nowhere", tmp_path / "runs").run()
    no_exceptions(at)
    assert "the folder does not exist" in texts(at)
    assert "cannot be used as a dataset" in texts(at)
    for page in ("evaluate", "classify"):
        at = app(page, tmp_path / "nowhere", tmp_path / "runs").run()
        no_exceptions(at)
        assert "No model" in texts(at) and "Train" in texts(at)
    at = app("train", tmp_path / "nowhere", tmp_path / "runs").run()
    no_exceptions(at)
    assert "No training runs yet" in texts(at)


def test_a_failed_run_shows_its_error(tmp_path, no_models):
    run_dir = tmp_path / "runs" / "20260101-000000-dead"
    run_dir.mkdir(parents=True)
    files.write_json_atomic(run_dir / "params.json", {"data": str(tmp_path), "epochs": 3})
    files.write_json_atomic(
        run_dir / "status.json",
        {
            "run_id": run_dir.name,
            "state": "failed",
            "epochs": 3,
            "error": "cannot train: no readable images of class with_mask",
        },
    )
    at = app("train", tmp_path, tmp_path / "runs").run()
    no_exceptions(at)
    assert any("The run failed." in e.value and "no readable images of class with_mask" in e.value for e in at.error)


def test_the_kaggle_form_shows_why_a_download_failed_at_once_and_selects_a_finished_one(
    tmp_path, no_models, monkeypatch
):
    """The real download process, with Kaggle played by tests/kaggle_server.py."""
    from conftest import make_dataset
    from kaggle_server import FakeKaggle
    from maskdet import kaggle

    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-json"))
    upstream = make_dataset(tmp_path / "upstream" / "FaceMask Dataset", per_class=40).parent
    with FakeKaggle(upstream, monkeypatch, status=401) as fake:
        monkeypatch.setattr(kaggle, "_check_kaggle", lambda username, key, dataset: {"totalBytes": len(fake.archive)})
        at = app("dataset", tmp_path / "nowhere", tmp_path / "runs").run()
        at.text_input(key="kaggle_user").input("someone")
        at.text_input(key="kaggle_key").input("wrong")
        next(t for t in at.text_input if t.label == "Download into").input(str(tmp_path / "data"))
        button(at, "Download").click().run()
        no_exceptions(at)
        in_boxes = [e.value for box in [*at.status, *at.expander] for e in box.error]  # shown only when opened
        shown = [e.value for e in at.error if e.value not in in_boxes]
        assert any("Kaggle refused the credentials (401)" in e for e in shown), (shown, in_boxes)
        assert [s.label for s in at.status] == ["Download failed"] and at.status[0].state == "error"
        assert at.session_state["data_dir"] == str(tmp_path / "nowhere")

        fake.status = 200
        button(at, "Download").click().run()
        no_exceptions(at)
    folder = tmp_path / "data" / config.KAGGLE_DATASET.split("/")[-1]
    assert at.session_state["data_dir"] == str(folder)  # the download is now the dataset folder
    assert "Files: 80" in texts(at) and "now the dataset folder" in texts(at)


def test_the_server_takes_uploads_as_large_as_the_classify_page_promises():
    import tomllib

    server = tomllib.loads((config.PROJECT_DIR / ".streamlit" / "config.toml").read_text())["server"]
    assert server["maxUploadSize"] == config.UPLOAD_MAX_MB


@pytest.mark.slow
def test_classify_labels_an_uploaded_face_and_explains_a_bad_file(trained_run, facemask_dir, scenes_dir, no_models):
    at = app("classify", facemask_dir, trained_run.parent, trained_run / "model.keras").run()
    no_exceptions(at)
    assert f"up to {config.UPLOAD_MAX_MB} MB each" in texts(at)
    face = sorted((facemask_dir / "with_mask").glob("*.jpg"))[0]
    at.file_uploader(key="photos").set_value(
        [(face.name, face.read_bytes(), "image/jpeg"), ("notes.jpg", b"this is not a picture", "image/jpeg")]
    ).run()
    no_exceptions(at)
    said = texts(at)
    assert any(f"{words}**]" in said for words in ("with mask", "without mask", "uncertain"))  # the coloured label
    assert "P(mask) = **" in said
    assert [e.value for e in at.error] == ["notes.jpg: not an image file (or a format Pillow cannot read)"]
    scene = sorted((scenes_dir / "images").glob("*.jpg"))[0]  # faces found, boxed and counted
    at.file_uploader(key="photos").set_value([(scene.name, scene.read_bytes(), "image/jpeg")]).run()
    no_exceptions(at)
    assert re.search(r"### \d+ faces?: \d+ with mask, \d+ without", texts(at)), texts(at)
    assert at.toggle(key="whole_image").value is False
    at.toggle(key="whole_image").set_value(True).run()  # the whole photo taken for one face
    assert texts(at).count("P(mask) = **") == 1
    at.toggle(key="use_camera").set_value(True).run()
    at.camera_input(key="camera").set_value(("camera.jpg", face.read_bytes(), "image/jpeg")).run()
    no_exceptions(at)
    assert texts(at).count("P(mask) = **") >= 2


@pytest.mark.slow
def test_a_broken_model_is_explained_and_the_app_goes_on_with_another(trained_run, facemask_dir, no_models):
    import shutil

    shutil.copy(trained_run / "model.keras", no_models / "maskdet.keras")
    (no_models / "damaged.keras").write_bytes(b"PK\x03\x04 half a zip file")
    at = app("classify", facemask_dir, trained_run.parent, no_models / "damaged.keras").run()
    no_exceptions(at)
    assert any("damaged.keras: not a loadable Keras model" in e.value for e in at.error), texts(at)
    at.selectbox(key="model_path").set_value(str(no_models / "maskdet.keras")).run()
    no_exceptions(at)
    assert not at.error
    face = sorted((facemask_dir / "without_mask").glob("*.jpg"))[0]
    at.file_uploader(key="photos").set_value([(face.name, face.read_bytes(), "image/jpeg")]).run()
    no_exceptions(at)
    assert "P(mask) = **" in texts(at)


@pytest.mark.slow
def test_evaluate_shows_the_confusion_matrix_and_a_threshold_moves_it(trained_run, facemask_dir, no_models):
    at = app("evaluate", facemask_dir, trained_run.parent, trained_run / "model.keras").run()
    no_exceptions(at)
    said = texts(at)
    n_val = int((dataset.scan(facemask_dir)["split"] == "val").sum())
    assert 2000 < n_val < 2700 and f"Validation images: {n_val:,}" in said and "Accuracy: " in said
    drawn = charts(at)
    assert drawn["Confusion matrix at threshold 0.50"]["count"].sum() == n_val
    assert {"ROC curve (positive class: with mask)", "Precision-recall (with mask)"} <= set(drawn)
    before = drawn["Confusion matrix at threshold 0.50"].set_index(["true", "predicted"])["count"]
    at.slider(key="threshold").set_value(0.99).run()
    no_exceptions(at)
    after = charts(at)["Confusion matrix at threshold 0.99"].set_index(["true", "predicted"])["count"]
    assert after.sum() == n_val
    missed = ("with mask", "without mask")
    assert after[missed] >= before[missed]  # a stricter "mask" threshold misses more masks
    # a 1-epoch model asked for P(mask) >= 0.99 errs: the errors section has something to show, and counts it
    errors = int(after[missed] + after[("without mask", "with mask")])
    assert errors > 0, after
    said = texts(at)
    assert f"Errors ({errors:,})" in said
    assert at.toggle(key="saliency").value and len(at.get("image")) >= 1  # Grad-CAM overlays of the errors
    # errors counted and shown by photo family (one photo and its near-duplicates)
    wrong, families = (
        int(v.replace(",", "")) for v in re.search(r"([\d,]+) wrong images from \*\*([\d,]+) of the", said).group(1, 2)
    )
    shown = int(re.search(r"showing [\d,]+-[\d,]+ of ([\d,]+)", said).group(1).replace(",", ""))
    assert wrong == errors and at.toggle(key="one_per_family").value and shown == families <= wrong
    at.toggle(key="one_per_family").set_value(False).run()
    no_exceptions(at)
    assert f"of {wrong:,}" in texts(at).split("showing", 1)[1].splitlines()[0]


@pytest.mark.slow
def test_train_starts_a_real_run_shows_it_live_and_promotes_it(facemask_dir, tmp_path, no_models):
    runs_dir = tmp_path / "runs"
    at = app("train", facemask_dir, runs_dir).run()
    no_exceptions(at)
    assert at.selectbox(key="f_backbone").options[:2] == [
        "MobileNetV2, pretrained on ImageNet (recommended)",
        "EfficientNet-Lite0, pretrained on ImageNet",
    ]
    preset = at.radio(key="f_preset")
    assert "here)" not in preset.options[0]  # nothing measured yet: no time promised
    shipped_card = config.PROJECT_DIR / "models" / "maskdet.card.json"
    (no_models / "maskdet.card.json").write_bytes(shipped_card.read_bytes())  # the shipped model's training time
    at.run()
    preset = at.radio(key="f_preset")
    assert re.fullmatch(r"Quick try: 1 epoch on 2,000 images \(about \d+ s here\)", preset.options[0]), preset.options
    preset.set_value("Quick try: 1 epoch on 2,000 images").run()  # the quick try, its time measured on this machine
    assert at.number_input(key="f_epochs").value == 1 and at.number_input(key="f_limit").value == 2000
    at.select_slider(key="f_batch").set_value(32)
    at.select_slider(key="f_size").set_value(96)
    at.number_input(key="f_limit").set_value(200)
    button(at, "Start training").click().run()
    no_exceptions(at)
    started = runs.list_runs(runs_dir)
    params = runs.params(Path(started[0]["path"]))
    assert len(started) == 1 and params["limit"] == 200 and params["epochs"] == 1
    assert params["backbone"] == "mobilenet_v2" and params["input_size"] == 96

    # a second start while the first one trains (its process is still importing TensorFlow) is refused
    button(at, "Start training").click().run()
    # exactly one run (the refusal's wording is tested with two real simultaneous starts in test_reliability)
    assert [r["path"] for r in runs.list_runs(runs_dir)] == [started[0]["path"]]

    deadline = time.time() + 300
    while time.time() < deadline and runs.status(Path(started[0]["path"]))["state"] not in runs.FINAL:
        time.sleep(2)
        at.run()  # what a user's open page does every 2 s (the run_every fragment)
        no_exceptions(at)
    status = runs.status(Path(started[0]["path"]))
    assert status["state"] == "done", status.get("error")
    at.run()
    no_exceptions(at)
    said = texts(at)
    assert "done" in said and "validation accuracy" in said
    assert set(charts(at)["Loss"]["series"]) == {"train (batch)", "train (epoch)", "validation"}

    if any(c.key == "promote_anyway" for c in at.checkbox):  # 1 epoch on 200 images may still answer one class
        at.checkbox(key="promote_anyway").check().run()
    at.button(key="promote").click().run()
    no_exceptions(at)
    assert config.DEFAULT_MODEL.exists() and json.loads(config.MODEL_CARD.read_text())["source_run"] == status["run_id"]
    assert "is now the active model" in texts(at)
    assert at.selectbox(key="model_path").value == str(config.DEFAULT_MODEL)


def fake_finished_run(runs_dir: Path, run_id: str, confusion_matrix, state="done") -> Path:
    """A finished run folder with a model.keras of a few bytes (promotion copies it, the Train page never
    loads it) and its validation figures."""
    from maskdet import evaluate

    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    files.write_json_atomic(run_dir / "params.json", {"data": str(runs_dir), "epochs": 1, "batch_size": 32})
    (tp, fn), (fp, tn) = confusion_matrix
    m = evaluate.metrics([1] * (tp + fn) + [0] * (fp + tn), [0.9] * tp + [0.1] * fn + [0.9] * fp + [0.1] * tn)
    files.write_json_atomic(run_dir / "evaluation.json", m)
    files.write_json_atomic(
        run_dir / "status.json",
        {"run_id": run_id, "state": state, "epochs": 1, "completed_epochs": 1, "val_accuracy": m["accuracy"]},
    )
    (run_dir / "model.keras").write_bytes(b"not really a model " + run_id.encode())
    return run_dir


def test_a_constant_model_shows_balanced_accuracy_a_warning_and_needs_a_confirmation(tmp_path, no_models):
    run_dir = fake_finished_run(tmp_path / "runs", "20260101-000000-c0de", [[94, 0], [56, 0]])
    at = app("train", tmp_path, tmp_path / "runs").run()
    no_exceptions(at)
    table = next(d.value for d in at.dataframe if "run" in d.value)  # the run list
    row = table[table["run"] == run_dir.name].iloc[0]
    assert row["balanced accuracy"] == pytest.approx(0.5) and "constant output" in row["warning"]
    said = texts(at)
    assert "Balanced accuracy: 50.0%" in said and "does not tell the classes apart" in said
    assert at.button(key="promote").disabled  # no promotion without the explicit override
    at.checkbox(key="promote_anyway").check().run()
    assert not at.button(key="promote").disabled
    at.button(key="promote").click().run()
    no_exceptions(at)
    assert config.DEFAULT_MODEL.read_bytes() == (run_dir / "model.keras").read_bytes()
    assert "constant output" in json.loads(config.MODEL_CARD.read_text())["promoted_despite"]


def test_rollback_says_what_it_swaps_asks_first_and_a_second_press_does_not_swap_back(tmp_path, no_models):
    from maskdet import models

    old = fake_finished_run(tmp_path / "runs", "20260101-000000-0001", [[90, 10], [10, 90]])
    new = fake_finished_run(tmp_path / "runs", "20260101-000000-0002", [[95, 5], [5, 95]])
    models.promote(old)
    models.promote(new)
    at = app("train", tmp_path, tmp_path / "runs").run()
    no_exceptions(at)
    said = texts(at)
    assert "swaps the two" in said and old.name in said and new.name in said
    press = button(at, "Roll back to the previous model")
    assert press.disabled  # asks first
    next(c for c in at.checkbox if c.label.startswith("Yes, swap")).check().run()
    press = button(at, "Roll back to the previous model")
    assert not press.disabled
    press.click().run()
    no_exceptions(at)
    assert config.DEFAULT_MODEL.read_bytes() == (old / "model.keras").read_bytes()
    said = next(m.value for m in at.success if m.value.startswith("Rolled back:"))
    assert re.search(rf"the active model is now the one of [^;]*\brun {old.name}\b", said), said
    again = button(at, "Roll back to the previous model")
    assert again.disabled and not next(c for c in at.checkbox if c.label.startswith("Yes, swap")).value
    assert again.key != press.key  # a click queued on the first button (a double click) finds no button to press


def test_a_promotion_or_rollback_from_elsewhere_shows_at_the_next_redraw(tmp_path, no_models):
    """Another tab or the command line changes the models folder: the model picker and the models table
    follow at once (their cache is keyed by the folder's version), not a few seconds later."""
    from maskdet import models

    first = fake_finished_run(tmp_path / "runs", "20260101-000000-0003", [[90, 10], [10, 90]])
    second = fake_finished_run(tmp_path / "runs", "20260101-000000-0004", [[95, 5], [5, 95]])
    models.promote(first)
    at = app("train", tmp_path, tmp_path / "runs").run()
    no_exceptions(at)
    assert "Previous: maskdet.previous.keras" not in at.selectbox(key="model_path").options
    models.promote(second)  # as `python -m maskdet promote` would
    at.run()
    assert "Previous: maskdet.previous.keras" in at.selectbox(key="model_path").options
    assert f"run {second.name}" in next(d.value for d in at.dataframe if "card" in d.value)["card"].iloc[0]
    models.rollback()
    at.run()
    assert f"run {first.name}" in next(d.value for d in at.dataframe if "card" in d.value)["card"].iloc[0]
    assert f"run {first.name}" in texts(at)  # the sidebar's card line of the active model


def test_compare_runs_tells_runs_apart_with_a_categorical_palette(tmp_path, no_models):
    for n, run_id in enumerate(("20260101-000000-0005", "20260101-000000-0006")):
        run_dir = fake_finished_run(tmp_path / "runs", run_id, [[90, 10], [10, 90]])
        (run_dir / "metrics.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "kind": "epoch",
                        "epoch": e,
                        "step": 10 * e,
                        "loss": 0.5,
                        "accuracy": 0.8,
                        "val_loss": 0.6 - 0.1 * e - 0.05 * n,
                        "val_accuracy": 0.7 + 0.1 * e + 0.05 * n,
                    }
                )
                + "\n"
                for e in (1, 2)
            )
        )
    at = app("train", tmp_path, tmp_path / "runs").run()
    no_exceptions(at)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    compared = [s for s in specs if "per epoch" in str(s.get("title"))]
    assert len(compared) == 2
    for spec in compared:
        assert spec["encoding"]["color"]["field"] == "run"
        assert spec["encoding"]["color"]["scale"]["scheme"] in ("category10", "tableau10")


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    """A from-scratch MobileNet (alpha 0.25) with its random weights, saved as a .keras file: enough for the
    Evaluate page to draw its figures, at no training cost."""
    from maskdet import backbones, model, train

    path = tmp_path_factory.mktemp("untrained") / "model.keras"
    train.save_serving_model(model.make_model(backbones.SCRATCH, alpha=0.25), path)
    return path


def test_evaluate_curves_are_zoomed_with_a_full_range_toggle_and_mark_the_threshold(
    untrained_model, tmp_path, no_models
):
    import shutil

    from conftest import make_dataset

    data_dir = make_dataset(tmp_path / "faces", per_class=20)
    shutil.copy(untrained_model, config.DEFAULT_MODEL)  # the active model (the picker lists models and runs only)
    at = app("evaluate", data_dir, tmp_path / "runs").run()
    no_exceptions(at)

    def roc_spec():
        spec = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart") if "ROC" in json.dumps(c.proto.spec))
        line, dot, text = spec["layer"]
        return line["encoding"]["x"]["scale"]["domain"], text

    zoomed, label = roc_spec()
    assert label["mark"]["type"] == "text" and label["encoding"]["text"]["field"] == "label"
    assert "threshold 0.50" in set(charts(at)["ROC curve (positive class: with mask)"]["label"].dropna())
    at.toggle(key="curves_full").set_value(True).run()
    no_exceptions(at)
    assert roc_spec()[0] == [0, 1]
    assert zoomed[0] == 0 and zoomed[1] >= 0.2


def test_browse_goes_back_to_the_first_page_on_a_new_filter_or_order_and_explains_an_empty_filter(
    tiny_dataset, tmp_path, no_models
):
    at = app("dataset", tiny_dataset, tmp_path / "runs", dataset_tab="Browse images").run()
    no_exceptions(at)
    at.number_input(key="browse_page").set_value(3).run()
    assert "showing 73-80 of 80" in texts(at)
    at.selectbox(key="browse_order").set_value("smallest first").run()
    assert at.number_input(key="browse_page").value == 1 and "showing 1-36 of 80" in texts(at)
    at.number_input(key="browse_page").set_value(2).run()
    at.pills(key="browse_split").set_value(["train", "val"]).run()
    assert at.number_input(key="browse_page").value == 1
    at.pills(key="browse_class").set_value([]).run()
    no_exceptions(at)
    said = texts(at)
    assert "Pick at least one class" in said and "showing 0-0" not in said


def test_evaluate_warns_of_other_data_by_fingerprint_not_by_where_the_model_was_trained(
    untrained_model, tmp_path, no_models
):
    """Issue 16, item 3: a clone's copy of the data a model was trained on is the same data, wherever it lies."""
    import shutil

    from conftest import make_dataset
    from maskdet import dataset

    data_dir = make_dataset(tmp_path / "clone" / "faces", per_class=20)
    shutil.copy(untrained_model, config.DEFAULT_MODEL)
    trained_on = dataset.fingerprint(dataset.scan(data_dir), data_dir)
    files.write_json_atomic(
        config.MODEL_CARD,
        {"data": "/home/trainer/datasets/faces", "data_fingerprint": trained_on, "split": {"val_fraction": 0.2}},
    )
    at = app("evaluate", data_dir, tmp_path / "runs").run()
    no_exceptions(at)
    assert "Validation images:" in texts(at) and not [w for w in at.warning if "trained on" in w.value]
    files.write_json_atomic(config.MODEL_CARD, {"data": str(data_dir), "data_fingerprint": "0" * 64})
    at = app("evaluate", data_dir, tmp_path / "runs").run()
    no_exceptions(at)
    assert [w.value for w in at.warning if "This model was trained on" in w.value and "fingerprints differ" in w.value]


@pytest.mark.shared
def test_classify_many_photos_gives_a_summary_table_to_download(facemask_dir, scenes_dir, tmp_path):
    """Three photos (a street scene, a face crop, a picture without a face) on the shipped model: one row
    each with its counts and verdict, CSV and JSON to download, and 'No face found' said once, naming the
    page's switch."""
    if not config.DEFAULT_MODEL.exists():
        pytest.skip("the shipped model is needed")
    at = app("classify", facemask_dir, tmp_path, config.DEFAULT_MODEL).run()
    scene = scenes_dir / "images" / "maksssksksss705.jpg"
    face = sorted((facemask_dir / "without_mask").glob("*.jpg"))[0]
    blank = tmp_path / "wall.png"
    Image.new("RGB", (640, 480), (180, 170, 150)).save(blank)
    at.file_uploader(key="photos").set_value(
        [(p.name, p.read_bytes(), "image/png" if p.suffix == ".png" else "image/jpeg") for p in (scene, face, blank)]
    ).run()
    no_exceptions(at)
    table = at.dataframe[0].value
    assert list(table["file"]) == [scene.name, face.name, blank.name]
    row = table.set_index("file")
    assert row.loc[scene.name, "verdict"] == "with_mask" and row.loc[scene.name, "with_mask"] >= 10
    assert row.loc[scene.name, "faces"] == row.loc[scene.name, ["with_mask", "without_mask", "uncertain"]].sum()
    assert row.loc[face.name, "faces"] == 1 and row.loc[blank.name, "verdict"] == "no_face"
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download JSON (every face)"]
    said = texts(at)
    assert said.lower().count("no face found") == 1 and "*Whole image is one face*" in said
