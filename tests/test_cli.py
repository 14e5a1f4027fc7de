"""The command line on real data: train, evaluate, predict, export, and its error messages."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, fake_run
from maskdet import config, dataset, runs

pytestmark = [pytest.mark.slow, pytest.mark.shared]
# what TensorFlow's C++ runtime prints on import, before any Python code can silence it
TF_STARTUP = re.compile(r"absl::InitializeLog|cudart_stub|cuda_platform|cpu_feature_guard|rebuild TensorFlow")


def real_faces(facemask_dir, n=3):
    return [sorted((facemask_dir / c).iterdir())[i] for c in config.CLASS_NAMES for i in range(n)]


def test_one_epoch_run_on_real_images_writes_its_record(trained_run):
    st = runs.status(trained_run)
    assert st["state"] == "done" and st["train_images"] + st["val_images"] <= 610
    assert st["train_images"] > 350 and st["val_images"] > 60
    assert st["data_files"] == {"files": 11616, "readable": 11616, "skipped": {}}  # the card's "N of M"
    assert len([m for m in runs.metrics(trained_run) if m["kind"] == "batch"]) == st["steps_per_epoch"]


def test_evaluate_json_reports_the_matrix_in_class_order(trained_run, facemask_dir):
    proc = cli("evaluate", "--model", trained_run / "model.keras", "--data", facemask_dir, "--json", check=True)
    m = json.loads(proc.stdout)
    assert {"n", "accuracy", "balanced_accuracy", "confusion_matrix", "per_class", "threshold"} <= set(m)
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (2, 2) and cm.sum() == m["n"]
    assert m["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert list(m["per_class"]) == list(config.CLASS_NAMES)
    split = __import__("pandas").read_csv(trained_run / "split.csv")
    assert m["n"] > 2000  # the whole val split of facemask-12k, not the run's sample
    assert set(split["split"]) == {"train", "val"}
    # the val split's photo families, and how many of them hold an error
    table = dataset.scan(facemask_dir)
    assert m["families"] == table.loc[table["split"] == "val", "group"].nunique()
    wrong = cm[0, 1] + cm[1, 0]
    assert min(wrong, 1) <= m["families_with_errors"] <= min(wrong, m["families"])


def test_predict_json_gives_a_line_per_input_and_an_error_for_bad_ones(trained_run, facemask_dir, tmp_path):
    faces = real_faces(facemask_dir)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image here")
    proc = cli("predict", "--model", trained_run / "model.keras", "--json", *faces, bad)
    lines = [json.loads(text) for text in proc.stdout.splitlines()]
    assert len(lines) == len(faces) + 1
    for line, path in zip(lines, faces):
        assert line["path"] == str(path) and line["error"] is None
        assert line["label"] in (*config.CLASS_NAMES, config.UNCERTAIN) and 0 <= line["p_mask"] <= 1
        assert line["label"] == line["faces"][0]["label"] and line["counts"][line["label"]] == 1
    assert lines[-1]["error"] and "not an image" in lines[-1]["error"] and lines[-1]["p_mask"] is None
    assert proc.returncode == 1
    ok = cli("predict", "--model", trained_run / "model.keras", "--json", faces[0])
    assert ok.returncode == 0


def test_errors_are_one_sentence_not_a_traceback(tmp_path, facemask_dir):
    cases = [
        ("evaluate", "--model", tmp_path / "none.keras", "--data", facemask_dir),
        ("train", "--data", tmp_path / "nothing-here", "--epochs", 1),
        ("predict", "--model", tmp_path / "none.keras", facemask_dir / "with_mask" / "test_1163.jpg"),
        ("cancel", "no-such-run", "--runs-dir", tmp_path),
    ]
    for args in cases:
        proc = cli(*args)
        assert proc.returncode != 0, args
        ours = [line for line in proc.stderr.strip().splitlines() if not TF_STARTUP.search(line)]
        assert len(ours) == 1 and ours[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr


def test_tflite_export_gives_the_keras_labels(trained_run, facemask_dir, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from maskdet import images, infer

    model = trained_run / "model.keras"
    out = Path(
        cli("export", "--model", model, "--format", "tflite", "--out", tmp_path / "m.tflite", check=True).stdout.strip()
    )
    interpreter = Interpreter(model_path=str(out))
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    faces = real_faces(facemask_dir, 10)
    pixels = np.stack([images.to_array(images.open_image(f)) for f in faces]).astype(np.float32)
    interpreter.resize_tensor_input(inp["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], pixels)
    interpreter.invoke()
    p_lite = interpreter.get_tensor(outp["index"]).ravel()
    p_raw = infer.Classifier.load(model, lite="off", mirror=False).probs(pixels.astype(np.uint8))
    np.testing.assert_allclose(p_lite, p_raw, atol=1e-4)
    assert ((p_lite >= 0.5) == (p_raw >= 0.5)).all()
    keras_only = infer.Classifier.load(model, lite="off")
    p_keras = keras_only.probs(pixels.astype(np.uint8))
    assert keras_only.engine == "keras"
    # maskdet's own fast path (converted and cached on first use) answers as Keras does, one face or many
    fast = infer.Classifier.load(model, lite="convert")
    assert fast.engine == "tflite + keras" and infer.lite_cache_path(model).exists()
    np.testing.assert_allclose(fast.probs(pixels.astype(np.uint8)), p_keras, atol=1e-4)
    np.testing.assert_allclose([fast.probs(p)[0] for p in pixels.astype(np.uint8)], p_keras, atol=1e-4)
    assert infer.Classifier.load(model).engine == "tflite + keras"  # the next load finds the cached conversion
    saved = Path(
        cli("export", "--model", model, "--format", "saved_model", "--out", tmp_path / "sm", check=True).stdout.strip()
    )
    assert (saved / "saved_model.pb").exists()


def test_promote_writes_a_card_whose_validation_figures_evaluate_reproduces(tmp_path):
    from conftest import make_dataset

    dataset = make_dataset(tmp_path / "faces", per_class=30)
    env = {"MASKDET_MODELS": str(tmp_path / "models"), "MASKDET_RUNS": str(tmp_path / "runs")}
    run_dir = Path(
        cli("train", "--data", dataset, "--epochs", 1, "--batch-size", 16, "--input-size", 96, env=env, check=True)
        .stdout.strip()
        .splitlines()[0]
    )
    proc = cli("promote", run_dir.name, "--force", env=env, check=True)  # 1 epoch on 60 faces may answer one class
    active = Path(proc.stdout.strip())
    assert active == tmp_path / "models" / "maskdet.keras"
    card = json.loads((tmp_path / "models" / "maskdet.card.json").read_text())
    assert card["source_run"] == run_dir.name and card["backbone"] == "mobilenet_v2"
    assert card["scoring"] == "P(mask) of each face"  # a pretrained backbone is not scored with the mirror image
    assert card["weights_licence"].startswith("BSD-3-Clause") and "mobilenet_v2-b0353104" in card["weights_source"]
    again = json.loads(cli("evaluate", "--data", dataset, "--split", "val", "--json", env=env, check=True).stdout)
    assert again["confusion_matrix"] == card["metrics"]["confusion_matrix"]
    assert again["accuracy"] == pytest.approx(card["metrics"]["accuracy"])


def test_promote_refuses_a_constant_model_without_force_and_says_why(tmp_path):
    run = fake_run(tmp_path / "runs", "20260101-000000-ffff", b"model F", accuracy=0.627, constant=True)
    env = {"MASKDET_MODELS": str(tmp_path / "models"), "MASKDET_RUNS": str(tmp_path / "runs")}
    proc = cli("promote", run.name, env=env)
    assert proc.returncode == 2
    assert "constant output" in proc.stderr and "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "models" / "maskdet.keras").exists()
    assert "--force" in cli("promote", "--help").stdout
