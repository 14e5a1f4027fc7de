"""Training runs as folders: live metrics, cancel, kill and resume, one training at a time."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, make_dataset
from maskdet import backbones, config, infer, run_times, runs
from maskdet.train_params import TrainParams

pytestmark = pytest.mark.slow


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "faces", per_class=48)


def tiny(epochs: int) -> TrainParams:
    """The from-scratch MobileNet at its smallest, on small batches: what these tests train."""
    return TrainParams(backbone=backbones.SCRATCH, epochs=epochs, batch_size=8, alpha=0.25, learning_rate=1e-3)


def wait_for(predicate, timeout=240, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def epoch_lines(run_dir):
    return [m for m in runs.metrics(run_dir) if m["kind"] == "epoch" and not m.get("partial")]


def test_a_run_records_params_status_metrics_and_models(dataset, tmp_path):
    proc = cli(
        "train",
        "--data",
        dataset,
        "--epochs",
        2,
        "--head-epochs",
        1,
        "--input-size",
        96,
        "--batch-size",
        16,
        "--runs-dir",
        tmp_path / "runs",
        check=True,
    )  # the pretrained recipe: head, then fine-tuning
    run_dir = Path(proc.stdout.strip().splitlines()[0])
    assert run_dir.parent == tmp_path / "runs"
    assert "epoch 2:" in proc.stderr
    for name in ("params.json", "status.json", "metrics.jsonl", "checkpoint.keras", "model.keras", "split.csv"):
        assert (run_dir / name).exists(), name
    st = runs.status(run_dir)
    assert st["state"] == "done" and st["completed_epochs"] == 2 and 0 <= st["val_accuracy"] <= 1
    lines = runs.metrics(run_dir)
    batches = [m for m in lines if m["kind"] == "batch"]
    assert len(batches) == 2 * st["steps_per_epoch"]
    assert [m["epoch"] for m in epoch_lines(run_dir)] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epoch_lines(run_dir)[0])
    params = json.loads((run_dir / "params.json").read_text())
    assert params["epochs"] == 2 and params["batch_size"] == 16
    served = infer.load_model(run_dir / "model.keras")  # a model the app can load
    # the served model is the fine-tuned checkpoint's network without its optimizer state (Adam's two
    # moments of every weight): far smaller, same answers
    assert (run_dir / "model.keras").stat().st_size < 0.6 * (run_dir / "checkpoint.keras").stat().st_size
    x = np.random.default_rng(0).integers(0, 256, (4, *config.INPUT_SHAPE)).astype(np.float32)
    checkpoint = infer.load_model(run_dir / "checkpoint.keras")
    np.testing.assert_allclose(served(x, training=False), checkpoint(x, training=False), atol=1e-6)


def test_cancel_stops_within_a_batch_or_so_and_keeps_what_it_learned(dataset, tmp_path):
    run_dir = runs.start(
        dataset,
        tmp_path / "runs",
        tiny(epochs=200),
    )
    wait_for(lambda: len(epoch_lines(run_dir)) >= 1)
    runs.cancel(run_dir)
    asked = time.time()
    batches_then = len([m for m in runs.metrics(run_dir) if m["kind"] == "batch"])
    st = wait_for(lambda: (s := runs.status(run_dir))["state"] in runs.FINAL and s)
    batches_after = len([m for m in runs.metrics(run_dir) if m["kind"] == "batch"])
    assert st["state"] == "cancelled", st
    assert batches_after - batches_then <= 3
    assert time.time() - asked < 60
    infer.load_model(run_dir / "model.keras")
    infer.load_model(run_dir / "checkpoint.keras")


def test_killed_run_shows_failed_and_resumes_from_its_checkpoint(dataset, tmp_path):
    runs_dir = tmp_path / "runs"
    run_dir = runs.start(
        dataset,
        runs_dir,
        tiny(epochs=4),
    )
    wait_for(
        lambda: (
            runs.status(run_dir).get("completed_epochs", 0) >= 1
            and len(runs.metrics(run_dir)) > len(epoch_lines(run_dir)) + 2 * runs.status(run_dir)["steps_per_epoch"] - 8
        )
    )
    pid = runs.status(run_dir)["pid"]
    os.kill(pid, signal.SIGKILL)
    st = wait_for(lambda: (s := runs.status(run_dir))["state"] != "running" and s, timeout=30)
    assert st["state"] == "failed" and "resume" in st["error"] and st["has_checkpoint"]
    done_before = st["completed_epochs"]
    assert done_before >= 1
    infer.load_model(run_dir / "checkpoint.keras")  # intact after the kill
    # resume reads the run's own data folder: no default dataset needed (a fresh clone has none)
    cli(
        "train",
        "--resume",
        run_dir.name,
        "--runs-dir",
        runs_dir,
        check=True,
        env={"MASKDET_DATA": str(tmp_path / "no-such-folder")},
    )
    assert runs.status(run_dir)["state"] == "done"
    epochs = [m["epoch"] for m in epoch_lines(run_dir)]
    assert epochs == list(range(1, 5)), epochs  # resumed at done_before + 1, nothing repeated
    assert runs.status(run_dir)["resumed_from_epoch"] == done_before


def test_only_one_training_at_a_time(dataset, tmp_path):
    runs_dir = tmp_path / "runs"
    first = runs.start(
        dataset,
        runs_dir,
        tiny(epochs=200),
    )
    try:
        with pytest.raises(runs.RunError, match="already running"):
            runs.start(
                dataset,
                runs_dir,
                tiny(epochs=1),
            )
        proc = cli("train", "--data", dataset, "--epochs", 1, "--runs-dir", runs_dir)
        assert proc.returncode == 2 and "already running" in proc.stderr and "Traceback" not in proc.stderr
        assert [r["run_id"] for r in runs.list_runs(runs_dir)] == [first.name]
    finally:
        runs.cancel(first)
        wait_for(lambda: runs.status(first)["state"] in runs.FINAL)


def test_expected_time_comes_from_finished_runs_here_else_from_the_shipped_card(tmp_path):
    """Issue 16 item 2: the time a run will take, from measured speed (seconds per image and epoch,
    scaled by the input's pixels), stated before Start."""
    card = {
        "parameters": {"backbone": "mobilenet_v2", "input_size": 128},
        "machine": "x86_64, 2 cores",
        "training": {"elapsed_s": 860.0, "epochs": 6},
        "split": {"train_images": 9000},
    }
    seconds, source = run_times.expected_seconds("mobilenet_v2", 128, 6, 9000, tmp_path, card=card)
    assert seconds == pytest.approx(860.0) and "shipped model" in source
    half = run_times.expected_seconds("mobilenet_v2", 128, 3, 9000, tmp_path, card=card)[0]
    assert half == pytest.approx(run_times.STARTUP_S + (860.0 - run_times.STARTUP_S) / 2)
    assert run_times.expected_seconds("mobilenet_scratch", 100, 6, 9000, tmp_path, card=card) is None
    for name, elapsed in (("20260101-000000-aaaa", 120.0), ("20260101-000001-bbbb", 140.0)):  # two runs done here
        run = tmp_path / name
        run.mkdir()
        (run / "params.json").write_text(json.dumps({"backbone": "mobilenet_v2", "input_size": 96, "epochs": 2}))
        (run / "status.json").write_text(json.dumps({"state": "done", "train_images": 1000, "elapsed_s": elapsed}))
    seconds, source = run_times.expected_seconds("mobilenet_v2", 192, 1, 1000, tmp_path, card=card)
    per_image_epoch_96 = (130.0 - run_times.STARTUP_S) / 2000  # the median run
    assert (
        seconds == pytest.approx(run_times.STARTUP_S + per_image_epoch_96 * 4 * 1000)
        and source == "2 finished runs here"
    )
    assert run_times.say_duration(44) == "about 40 s" and run_times.say_duration(866) == "about 14 min"


def test_a_params_file_of_an_older_run_still_loads_and_a_new_one_keeps_its_keys():
    older = {"data": "/somewhere", "epochs": 3, "batch_size": 16, "alpha": 0.25, "retired": 1}  # no backbone yet
    params = TrainParams.from_record(older)
    assert (params.backbone, params.epochs, params.batch_size) == (backbones.SCRATCH, 3, 16)
    assert params.learning_rate == config.DEFAULT_LEARNING_RATE and params.head_epochs == config.DEFAULT_HEAD_EPOCHS
    assert list(TrainParams().record()) == [
        "backbone",
        "input_size",
        "epochs",
        "head_epochs",
        "batch_size",
        "alpha",
        "learning_rate",
        "fine_tune_learning_rate",
        "val_fraction",
        "limit",
        "augment",
        "seed",
    ]
    assert TrainParams.from_record({"data": "/x", **TrainParams(limit=200).record()}) == TrainParams(limit=200)


def test_progress_gives_the_time_left_from_the_pace_since_the_last_restart():
    status = {"epochs": 2, "steps_per_epoch": 10, "step": 4}
    batches = [{"kind": "batch", "step": s, "time": t} for s, t in ((1, 0.0), (2, 1.0), (3, 2.0), (1, 50.0))]
    assert run_times.progress(status, batches[:3]) == {"step": 4, "total": 20, "left_s": 16.0}
    assert run_times.progress(status, batches)["left_s"] is None  # resumed: too few batches since to tell
    assert run_times.progress({}, [])["left_s"] is None
