"""Shared fixtures: an isolated cache and runs folder, small generated datasets, the shared data."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Before maskdet is imported: caches and runs of the tests never touch the user's folders.
_TMP = Path(tempfile.mkdtemp(prefix="maskdet-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ["MASKDET_CACHE"] = str(_TMP / "cache")
os.environ["MASKDET_RUNS"] = str(_TMP / "runs")
PROJECT = Path(__file__).resolve().parent.parent
# The app reads folders under these roots only (maskdet.access): the tests' temporary folders (tmp_path) and
# the data sets; tests of the confinement itself set narrower roots.
os.environ["MASKDET_DATA_ROOTS"] = os.pathsep.join(
    [tempfile.gettempdir(), str(PROJECT.parent / "shared" / "datasets"), str(PROJECT / "data")]
)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = PROJECT.parent / "shared" / "datasets"
FACEMASK = SHARED / "facemask-12k"
SCENES = SHARED / "face-mask-scenes"


def need_shared(path: Path) -> Path:
    """The shared data set at `path`; skipped where it is absent, except in CI, where it must be there."""
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} not present (only on the team's machines)")
    return path


@pytest.fixture(scope="session")
def facemask_dir():
    return need_shared(FACEMASK)


@pytest.fixture(scope="session")
def scenes_dir():
    return need_shared(SCENES)


def synthetic_face(masked: bool, seed: int, size: int = 64) -> Image.Image:
    """A drawn face: skin-coloured oval with eyes; a masked one has a light band over mouth and nose."""
    rng = np.random.default_rng(seed)
    bg = tuple(int(v) for v in rng.integers(0, 255, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [255, 200, 170]))
    j = rng.integers(-4, 5, 2)
    d.ellipse([8 + j[0], 4 + j[1], size - 8 + j[0], size - 2 + j[1]], fill=skin)
    for ex in (22, 42):
        d.ellipse([ex + j[0] - 4, 24 + j[1] - 3, ex + j[0] + 4, 24 + j[1] + 3], fill=(30, 30, 30))
    if masked:
        colour = tuple(int(v) for v in rng.integers([150, 150, 150], [256, 256, 256]))
        d.rectangle([12 + j[0], 34 + j[1], size - 12 + j[0], size - 8 + j[1]], fill=colour)
    else:
        d.ellipse([24 + j[0], 44 + j[1], 40 + j[0], 50 + j[1]], fill=(160, 40, 40))
    return img


def make_dataset(root: Path, per_class: int = 40, class_dirs=("with_mask", "without_mask")) -> Path:
    """A small dataset folder of generated faces, one sub-folder per class."""
    for k, name in enumerate(class_dirs):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            synthetic_face(k == 0, seed=1000 * k + i).save(d / f"face_{i:03d}.jpg", quality=90)
    return root


@pytest.fixture
def tiny_dataset(tmp_path):
    return make_dataset(tmp_path / "tiny")


def cli(*args, timeout=600, check=False, env=None, cwd=PROJECT):
    """Run `python -m maskdet ARGS` and return the CompletedProcess (text)."""
    proc = subprocess.run(
        [sys.executable, "-m", "maskdet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"maskdet {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def no_models(tmp_path, monkeypatch):
    """An empty models folder as the active-model location, so no test touches models/."""
    from maskdet import config

    models_dir = tmp_path / "models"
    models_dir.mkdir()
    monkeypatch.setattr(config, "MODELS_DIR", models_dir)
    monkeypatch.setattr(config, "DEFAULT_MODEL", models_dir / "maskdet.keras")
    monkeypatch.setattr(config, "MODEL_CARD", models_dir / "maskdet.card.json")
    return models_dir


def launch_browser(flags):
    """Headless Debian chromium with these flags (a generator for a fixture), or a skip (a failure in CI)
    where it is not installed."""
    from appserver import CHROMIUM

    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=flags)
        yield b
        b.close()


@pytest.fixture(scope="session")
def trained_run(facemask_dir, tmp_path_factory):
    """A real 1-epoch run on 600 facemask-12k images, through the CLI (shared by the tests that need a model)."""
    runs_dir = tmp_path_factory.mktemp("runs")
    proc = cli("train", "--data", facemask_dir, "--epochs", 1, "--limit", 600, "--runs-dir", runs_dir, check=True)
    return Path(proc.stdout.strip().splitlines()[0])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell a failed test at teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def fake_run(runs_dir, name, payload: bytes, state="done", accuracy=0.9, constant=False):
    """A finished run folder whose model.keras holds `payload` (promotion copies bytes, it never loads them);
    `constant`: its evaluation is that of a model answering one class for every face."""
    from maskdet import files  # after the environment above is set

    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    files.write_json_atomic(
        run_dir / "params.json",
        {
            "data": "/data/facemask",
            "epochs": 3,
            "batch_size": 64,
            "alpha": 0.25,
            "learning_rate": 0.002,
            "val_fraction": 0.2,
            "limit": None,
        },
    )
    files.write_json_atomic(
        run_dir / "status.json",
        {
            "run_id": name,
            "state": state,
            "completed_epochs": 3,
            "train_images": 800,
            "val_images": 200,
            "val_accuracy": accuracy,
        },
    )
    files.write_json_atomic(
        run_dir / "evaluation.json",
        {
            "accuracy": accuracy,
            "balanced_accuracy": 0.5 if constant else accuracy,
            "n": 150 if constant else 200,
            "confusion_matrix": [[94, 0], [56, 0]] if constant else [[90, 10], [10, 90]],
            "threshold": 0.5,
        },
    )
    if state != "failed":
        (run_dir / "model.keras").write_bytes(payload)
    return run_dir
