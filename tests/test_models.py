"""Promoting runs to the active model, rolling back; thumbnails, face boxes and saliency maps."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import fake_run
from maskdet import cards, config, dataset, files, gallery, models, runs


@pytest.fixture
def shelf(tmp_path):
    """A models folder and its active model / card paths."""
    models_dir = tmp_path / "models"
    return models_dir / "maskdet.keras", models_dir / "maskdet.card.json"


def test_promoting_a_run_makes_it_the_active_model_with_a_card(tmp_path, shelf):
    dest, card = shelf
    run = fake_run(tmp_path / "runs", "20260101-000000-aaaa", b"model A", accuracy=0.91)
    models.promote(run, dest, card)
    assert dest.read_bytes() == b"model A"
    written = json.loads(card.read_text())
    assert written["source_run"] == run.name
    assert written["metrics"]["accuracy"] == 0.91
    assert written["split"]["val_fraction"] == 0.2 and written["parameters"]["alpha"] == 0.25
    assert "val accuracy 91.0%" in cards.card_summary(written)


def test_the_card_counts_every_file_of_the_class_folders(tmp_path, shelf):
    dest, card = shelf
    run = fake_run(tmp_path / "runs", "20260101-000000-cccc", b"model C")
    counts = {"files": 3945, "readable": 3921, "skipped": {"not an image": 23, "hidden file": 1}}
    files.write_json_atomic(run / "status.json", {**runs.status(run), "data_files": counts})  # what training records
    models.promote(run, dest, card)
    written = json.loads(card.read_text())
    assert written["data"] == "/data/facemask" and written["data_files"] == counts


def test_promotion_keeps_the_previous_model_and_its_card_and_rollback_restores_them(tmp_path, shelf):
    dest, card = shelf
    dest.parent.mkdir()
    dest.write_bytes(b"shipped model")
    card.write_text('{"note": "hand-written card of the shipped model"}')
    run = fake_run(tmp_path / "runs", "20260101-000000-bbbb", b"model B")
    models.promote(run, dest, card)
    assert dest.read_bytes() == b"model B"
    assert models.previous_model(dest).read_bytes() == b"shipped model"
    assert models.previous_model(dest).name == "maskdet.previous.keras"
    assert json.loads(models.previous_card(card).read_text())["note"].startswith("hand-written")
    assert models.previous_card(card).name == "maskdet.card.json.previous"

    models.rollback(dest, card)
    assert dest.read_bytes() == b"shipped model"
    assert json.loads(card.read_text())["note"].startswith("hand-written")
    assert models.previous_model(dest).read_bytes() == b"model B"  # a second rollback would redo
    models.rollback(dest, card)
    assert dest.read_bytes() == b"model B"
    assert not list(dest.parent.glob(".*"))  # no temporary files left behind


def test_unfinished_failed_or_already_active_runs_are_refused(tmp_path, shelf):
    dest, card = shelf
    failed = fake_run(tmp_path / "runs", "20260101-000000-cccc", b"", state="failed")
    with pytest.raises(models.PromotionError, match="no model.keras"):
        models.promote(failed, dest, card)
    good = fake_run(tmp_path / "runs", "20260101-000000-dddd", b"model D")
    models.promote(good, dest, card)
    with pytest.raises(models.PromotionError, match="already the active model"):
        models.promote(good, dest, card)
    with pytest.raises(models.PromotionError, match="no previous model"):
        models.rollback(dest, card)


def test_list_models_puts_the_active_model_first(tmp_path, monkeypatch):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    monkeypatch.setattr(config, "DEFAULT_MODEL", models_dir / "maskdet.keras")
    for name in ("zeta.keras", "maskdet.previous.keras", "maskdet.keras"):
        (models_dir / name).write_bytes(b"x")
    names = [m["name"] for m in models.list_models(models_dir)]
    assert names == ["maskdet.keras", "maskdet.previous.keras", "zeta.keras"]
    assert models.active_model(models_dir / "missing.keras")["exists"] is False


def test_thumbnails_are_small_jpegs_and_unreadable_files_get_a_placeholder(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (10, 200, 30)).save(big)
    thumb = Image.open(io.BytesIO(gallery.thumbnail(big, 96)))
    assert thumb.format == "JPEG" and max(thumb.size) == 96 and thumb.size[0] > thumb.size[1]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert Image.open(io.BytesIO(gallery.thumbnail(broken, 64))).size == (64, 64)


def test_face_boxes_are_drawn_in_their_label_colour_and_counted():
    photo = Image.new("RGB", (400, 300), "white")
    faces = [
        {"box": (20, 60, 120, 180), "label": "with_mask", "p_mask": 0.97},
        {"box": (250, 80, 350, 200), "label": "without_mask", "p_mask": 0.1},
    ]
    drawn = np.asarray(gallery.draw_faces(photo, faces))
    green, red = (np.array(Image.new("RGB", (1, 1), gallery.COLOURS[c]).getpixel((0, 0))) for c in config.CLASS_NAMES)
    assert (np.abs(drawn[120, 20].astype(int) - green) < 10).all()  # left edge of the first box
    assert (np.abs(drawn[140, 250].astype(int) - red) < 10).all()
    assert gallery.count_faces(faces) == "2 faces: 1 with mask, 1 without"
    assert gallery.count_faces([]) == "no face found"
    assert gallery.label_text("without_mask", 0.1) == "no mask 90%"


@pytest.mark.slow
def test_grad_cam_gives_one_normalised_map_per_image_for_a_trained_model(trained_run, facemask_dir):
    from maskdet import images, infer, saliency

    model = infer.load_model(trained_run / "model.keras")
    paths = [p for name in ("with_mask", "without_mask") for p in sorted((facemask_dir / name).glob("*.jpg"))[:3]]
    pixels = np.stack([images.to_array(images.open_image(p)) for p in paths])
    layer = saliency.default_layer(model)
    assert model.get_layer(index=2).get_layer(layer).output.shape[1] >= saliency.MIN_CELLS
    heat = saliency.grad_cam(model, pixels)
    assert heat.shape == (6, *config.IMAGE_SIZE) and heat.min() >= 0 and heat.max() <= 1
    shown = saliency.overlay(images.open_image(paths[0]), heat[0], size=160)
    assert max(shown.size) == 160
    both = saliency.grad_cam(model, pixels[:1], target=list(config.CLASS_NAMES[:1]))
    assert both.shape == (1, *config.IMAGE_SIZE)


def test_a_model_that_answers_one_class_for_everything_is_degenerate():
    constant = {"accuracy": 0.627, "balanced_accuracy": 0.5, "confusion_matrix": [[94, 0], [56, 0]]}
    assert "constant output" in models.degenerate(constant) and "never without_mask" in models.degenerate(constant)
    weak = {"accuracy": 0.6, "balanced_accuracy": 0.55, "confusion_matrix": [[50, 44], [40, 16]]}
    assert "balanced accuracy 55.0%" in models.degenerate(weak)
    assert models.degenerate({"balanced_accuracy": 0.9, "confusion_matrix": [[90, 10], [10, 90]]}) is None
    assert models.degenerate(None) is None  # a run from before evaluation.json: nothing to judge


def test_a_degenerate_model_is_promoted_only_when_forced_and_its_card_says_why(tmp_path, shelf):
    dest, card = shelf
    run = fake_run(tmp_path / "runs", "20260101-000000-eeee", b"model E", accuracy=0.627, constant=True)
    with pytest.raises(models.DegenerateModel, match="constant output"):
        models.promote(run, dest, card)
    assert not dest.exists()
    models.promote(run, dest, card, force=True)
    assert dest.read_bytes() == b"model E"
    assert "constant output" in json.loads(card.read_text())["promoted_despite"]


def test_what_a_promotion_keeps_for_a_rollback_stays_out_of_git_status():
    import shutil
    import subprocess

    project = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (project / ".git").exists():
        pytest.skip("not a git checkout")
    kept = ["models/maskdet.previous.keras", "models/maskdet.card.json.previous", "models/.maskdet.keras.123.swap"]
    ignored = subprocess.run(["git", "check-ignore", *kept], cwd=project, capture_output=True, text=True).stdout
    assert ignored.split() == kept
    assert subprocess.run(["git", "check-ignore", "-q", "models/maskdet.keras"], cwd=project).returncode == 1


def test_the_models_folder_version_changes_with_every_promotion_and_rollback(tmp_path, shelf):
    dest, card = shelf
    before = models.version(dest.parent)
    models.promote(fake_run(tmp_path / "runs", "20260101-000000-1111", b"model 1"), dest, card)
    first = models.version(dest.parent)
    models.promote(fake_run(tmp_path / "runs", "20260101-000000-2222", b"model 2"), dest, card)
    second = models.version(dest.parent)
    models.rollback(dest, card)
    assert len({before, first, second, models.version(dest.parent)}) == 4


def test_curves_of_a_near_perfect_model_are_zoomed_to_where_they_bend():
    from maskdet import evaluate

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(500), np.zeros(500)].astype(int)
    p = np.r_[rng.beta(20, 1, 500), rng.beta(1, 20, 500)]  # AUC ~0.999
    view = evaluate.curve_view(evaluate.curves(y, p))
    assert view["roc"]["x"] == [0.0, 0.2] and view["roc"]["y"][0] >= 0.5  # not the frame: the bend fills the view
    assert view["pr"]["x"][0] >= 0.5 and view["pr"]["y"][0] >= 0.5
    coin = evaluate.curve_view(evaluate.curves(y, rng.random(1000)))
    assert coin["roc"]["x"][1] > 0.9 and coin["roc"]["y"] == [0.0, 1.0]  # a coin's curve needs the whole square
    for v in (*view.values(), *coin.values()):
        assert 0 <= v["x"][0] <= v["x"][1] - 0.1 and v["x"][1] <= 1 and 0 <= v["y"][0] <= v["y"][1] - 0.1


# ---------------------------------------------------------------- what a model was trained on (issue 16, item 3)


def test_the_card_names_folders_relative_to_the_project_and_keeps_the_datas_fingerprint(tmp_path, shelf):
    dest, card = shelf
    run = fake_run(tmp_path / "runs", "20260101-000000-ffff", b"model F")
    shared = config.PROJECT_DIR.parent / "shared" / "datasets" / "facemask-12k"
    files.write_json_atomic(run / "params.json", {**runs.params(run), "data": str(shared)})
    files.write_json_atomic(run / "status.json", {**runs.status(run), "data_fingerprint": "f" * 64})
    models.promote(run, dest, card)
    written = json.loads(card.read_text())
    assert written["data"] == "../shared/datasets/facemask-12k" and written["data_fingerprint"] == "f" * 64
    assert cards.project_name(config.PROJECT_DIR / "runs" / "x") == "runs/x"
    assert cards.project_name("/elsewhere/faces") == "/elsewhere/faces"  # beyond the project's folder: absolute
    assert models.training_data(dest)["data"].resolve() == shared.resolve()  # read back against the project


def test_a_model_is_told_apart_from_data_by_fingerprint_not_by_folder(tmp_path, tiny_dataset, no_models):
    import shutil

    fingerprint = dataset.fingerprint(dataset.scan(tiny_dataset), tiny_dataset)
    files.write_json_atomic(
        config.MODEL_CARD,
        {"data": "/the/training/machine/faces", "data_fingerprint": fingerprint, "split": {"val_fraction": 0.3}},
    )
    trained = models.training_data(config.DEFAULT_MODEL)
    assert trained == {"data": Path("/the/training/machine/faces"), "fingerprint": fingerprint, "val_fraction": 0.3}
    copy = shutil.copytree(tiny_dataset, tmp_path / "clone" / "faces")
    assert not models.trained_elsewhere(trained, copy, dataset.fingerprint(dataset.scan(copy), copy))
    (copy / "with_mask" / "face_000.jpg").unlink()
    assert models.trained_elsewhere(trained, copy, dataset.fingerprint(dataset.scan(copy), copy))
    # a card from before fingerprints: told by its folder, relative to the project or absolute
    files.write_json_atomic(config.MODEL_CARD, {"data": str(tiny_dataset)})
    old = models.training_data(config.DEFAULT_MODEL)
    assert old["fingerprint"] is None and old["val_fraction"] == config.DEFAULT_VAL_FRACTION
    assert not models.trained_elsewhere(old, tiny_dataset, "anything")
    assert models.trained_elsewhere(old, copy, "anything")


@pytest.mark.slow
def test_the_shipped_card_carries_the_fingerprint_a_run_on_its_data_records(trained_run):
    """The shipped model was trained on facemask-12k: a run on that folder today records the same
    fingerprint, so Evaluate on a fresh clone does not warn that the model was trained elsewhere."""
    shipped = json.loads((config.PROJECT_DIR / "models" / "maskdet.card.json").read_text())
    run = runs.status(trained_run)
    assert run["data_fingerprint"] == shipped["data_fingerprint"]
    assert shipped["data"] == "../shared/datasets/facemask-12k" and not Path(shipped["data"]).is_absolute()
    assert not any(str(v).startswith("/") for v in (shipped.get("source_path"), shipped["parameters"]["data"]))


# ---------------------------------------------------------------- predictions kept on disk (issue 16, item 5)


def test_predictions_are_kept_on_disk_by_model_and_data_and_a_restart_reads_them_back(
    tmp_path, tiny_dataset, monkeypatch
):
    import subprocess
    import sys

    # a cache of its own: decoded pixels another test left in the project's cache would skip the reading
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv("MASKDET_CACHE", str(tmp_path / "cache"))  # the restarted process's too

    from maskdet import backbones, evaluate, infer, model, train

    path = tmp_path / "model.keras"
    train.save_serving_model(model.make_model(backbones.SCRATCH, alpha=0.25), path)
    val = dataset.scan(tiny_dataset)
    val = val[val["split"] == "val"]
    loads, seen = [], []

    def load():
        loads.append(path)
        return infer.Classifier.load(path, lite="off")

    first = evaluate.stored_predictions(path, val, load, progress=lambda *step: seen.append(step))
    n = len(val)
    assert loads == [path] and (n, n, "reading") in seen and (n, n, "classifying") in seen
    again = evaluate.stored_predictions(path, val, lambda: pytest.fail("the model was loaded again"))
    np.testing.assert_array_equal(again["p_mask"], first["p_mask"])
    # a restart: a new process reads them back without TensorFlow
    script = (
        "import sys; from maskdet import dataset, evaluate; t = dataset.scan(sys.argv[2]); "
        "p = evaluate.stored_predictions(sys.argv[1], t[t['split'] == 'val'], lambda: sys.exit('model loaded'));"
        "print(' '.join(f'{v:.6f}' for v in p['p_mask'])); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), str(tiny_dataset)],
        capture_output=True,
        text=True,
        cwd=config.PROJECT_DIR,
        check=True,
    ).stdout.split("\n")
    assert out[0] == " ".join(f"{v:.6f}" for v in first["p_mask"]) and out[1] == "False"
    # another image or another model file: computed afresh
    changed = val.assign(hash=val["hash"].where(val.index != val.index[0], "0" * 40))
    evaluate.stored_predictions(path, changed, load)
    other = tmp_path / "other.keras"
    train.save_serving_model(model.make_model(backbones.SCRATCH, alpha=0.25), other)

    def load_other():
        loads.append(other)
        return infer.Classifier.load(other, lite="off")

    evaluate.stored_predictions(other, val, load_other)
    assert loads == [path, path, other]


def test_heat_maps_are_kept_on_disk_per_model_file_and_read_back_without_the_model(tmp_path, tiny_dataset):
    from maskdet import backbones, images, infer, model, saliency, train

    path = tmp_path / "model.keras"
    train.save_serving_model(model.make_model(backbones.SCRATCH, alpha=0.25), path)
    table = dataset.scan(tiny_dataset).iloc[:3]
    pixels = [images.to_array(images.open_image(p)) for p in table["path"]]
    loaded = infer.load_model(path)
    first = saliency.stored_grad_cam(path, list(table["hash"]), lambda i: pixels[i], lambda: loaded)
    direct = saliency.grad_cam(loaded, np.stack(pixels))
    assert first.shape == (3, *config.IMAGE_SIZE) and np.abs(first - direct).max() <= 0.5 / 255 + 1e-6
    again = saliency.stored_grad_cam(
        path,
        list(table["hash"]),
        lambda i: pytest.fail("decoded again"),
        lambda: pytest.fail("the model was loaded again"),
    )
    np.testing.assert_array_equal(again, first)
