"""Single-face latency and batch throughput, side by side in one run: maskdet's Classifier (its TFLite
engine, and its compiled Keras function) against model.predict (the seed's way). Every maskdet figure
includes the mirror image that each face is scored with; model.predict is one image.

    python benchmarks/bench_infer.py [--model models/maskdet.keras] [--runs 100]
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskdet import config, infer  # noqa: E402


def median_ms(fn, runs):
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=config.DEFAULT_MODEL)
    ap.add_argument("--runs", type=int, default=100)
    a = ap.parse_args()
    import tensorflow as tf

    keras_clf = infer.Classifier.load(a.model, lite="off")
    t = time.perf_counter()
    clf = infer.Classifier.load(a.model, lite="convert")
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *config.INPUT_SHAPE)).astype(np.uint8)
    batch = rng.integers(0, 256, (64, *config.INPUT_SHAPE)).astype(np.uint8)
    print(
        f"# {a.model} ({clf.model.count_params():,} parameters); {platform.node()} {os.cpu_count()} cores, "
        f"TF {tf.__version__}, {time.strftime('%Y-%m-%d')}; median of {a.runs} warm calls; "
        f"load with TFLite engine {load_s:.1f} s ({clf.engine})"
    )
    ours = median_ms(lambda: clf.probs(one), a.runs)
    keras_one = median_ms(lambda: keras_clf.probs(one), a.runs)
    predict = median_ms(lambda: clf.model.predict(one.astype(np.float32), verbose=0), a.runs)
    lite_batch_ms = median_ms(lambda: clf.probs(batch), max(10, a.runs // 5))
    batch_ms = median_ms(lambda: keras_clf.probs(batch), max(10, a.runs // 5))
    print(f"{'one face, maskdet Classifier.probs (TFLite engine)':60s} {ours:8.2f} ms   (goal <= 3 ms)")
    print(f"{'one face, Classifier.probs, Keras engine (tf.function)':60s} {keras_one:8.2f} ms")
    print(f"{'one face, model.predict (as the seed did)':60s} {predict:8.2f} ms   ({predict / ours:.0f}x slower)")
    print(f"{'batch of 64, TFLite engine':60s} {64000 / lite_batch_ms:8.0f} faces/s")
    print(f"{'batch of 64, Keras engine':60s} {64000 / batch_ms:8.0f} faces/s")


if __name__ == "__main__":
    main()
