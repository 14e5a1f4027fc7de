"""From scratch against pretrained backbones, side by side in one run: for each model (a .keras file, or a
run folder), validation on the leak-free split, face-mask-scenes faces cut at each margin, training time,
ms per face through the serving engine (TFLite, face + mirror image) and the file's size.

    python benchmarks/bench_backbones.py models/maskdet.keras runs/<run-id> [runs/<run-id>/head_model.keras ...]
        [--data ../shared/datasets/facemask-12k] [--scenes ../shared/datasets/face-mask-scenes] [--runs 100]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskdet import config, evaluate, infer, runs  # noqa: E402

SHARED = config.PROJECT_DIR.parent / "shared" / "datasets"


def describe(model_path: Path) -> tuple[str, str]:
    """(what the model is, how long its training took) from its run folder or its card."""
    run_dir = model_path.parent
    params = runs.read_json(run_dir / "params.json", None)
    status = runs.read_json(run_dir / "status.json", {}) or {}
    if params is None:  # a shipped model: its card says
        card = runs.read_json(model_path.with_suffix(".card.json"), {}) or {}
        params, status = card.get("parameters") or {}, {"elapsed_s": (card.get("training") or {}).get("elapsed_s")}
    name = params.get("backbone", "mobilenet_scratch")
    what = (
        f"{name} a{params.get('alpha')}"
        if name == "mobilenet_scratch"
        else f"{name} {params.get('input_size', config.DEFAULT_INPUT_SIZE)} px"
    )
    if model_path.name == "head_model.keras":
        what += f", head only ({params.get('head_epochs')} ep)"
    else:
        what += f", {params.get('epochs')} ep"
    trained_here = status.get("elapsed_s") and model_path.name == "model.keras"
    took = f"{status['elapsed_s'] / 60:.0f} min" if trained_here else "-"
    return what, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--data", type=Path, default=SHARED / "facemask-12k")
    ap.add_argument("--scenes", type=Path, default=SHARED / "face-mask-scenes")
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    import tensorflow as tf

    print(
        f"# {platform.node()} {os.cpu_count()} cores, TF {tf.__version__}, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"validation: {a.data} leak-free split; scenes: {a.scenes} faces >= 32 px, balanced accuracy at margins "
        f"{', '.join(f'{m:g}' for m in evaluate.CROSS_SOURCE_MARGINS)} (app: 0.05); one face: median of {a.runs}, "
        "TFLite engine, face + mirror"
    )
    header = [
        "model",
        "val acc",
        "val bal",
        *(f"scenes m{m:g}" for m in evaluate.CROSS_SOURCE_MARGINS),
        "train time",
        "ms/face",
        "MB",
    ]
    print(" | ".join(header))
    rows = []
    one = np.random.default_rng(0).integers(0, 256, (1, *config.INPUT_SHAPE)).astype(np.uint8)
    for path in a.models:
        path = path / "model.keras" if path.is_dir() else path
        clf = infer.Classifier.load(path, lite="convert")
        _, val = evaluate.evaluate(clf, a.data, "val")
        xs = evaluate.cross_source(clf, a.scenes)
        for _ in range(5):
            clf.probs(one)
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            clf.probs(one)
            times.append(time.perf_counter() - t)
        what, took = describe(path)
        row = {
            "model": what,
            "path": str(path),
            "val_accuracy": val["accuracy"],
            "val_balanced_accuracy": val["balanced_accuracy"],
            "val_confusion_matrix": val["confusion_matrix"],
            "scenes_by_margin": xs["by_margin"],
            "train_time": took,
            "ms_per_face": 1000 * float(np.median(times)),
            "mb": path.stat().st_size / 1e6,
            "engine": clf.engine,
        }
        rows.append(row)
        print(
            " | ".join(
                [
                    what,
                    f"{val['accuracy']:.2%}",
                    f"{val['balanced_accuracy']:.2%}",
                    *(f"{m['balanced_accuracy']:.1%} {m['confusion_matrix']}" for m in xs["by_margin"].values()),
                    took,
                    f"{row['ms_per_face']:.2f}",
                    f"{row['mb']:.1f}",
                ]
            ),
            flush=True,
        )
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
