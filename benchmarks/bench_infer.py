"""Single-face latency and batch throughput, side by side in one run: maskdet's compiled path
(infer.Classifier) against model.predict (the seed's way), plus the TFLite interpreter.

    python benchmarks/bench_infer.py [--model models/maskdet.keras] [--runs 100]
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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

    from maskdet import export

    clf = infer.Classifier.load(a.model)
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, *config.INPUT_SHAPE)).astype(np.uint8)
    batch = rng.integers(0, 256, (64, *config.INPUT_SHAPE)).astype(np.uint8)
    print(f"# {a.model} ({clf.model.count_params():,} parameters); {platform.node()} {os.cpu_count()} cores, "
          f"TF {tf.__version__}, {time.strftime('%Y-%m-%d')}; median of {a.runs} warm calls")
    ours = median_ms(lambda: clf.probs(one), a.runs)
    predict = median_ms(lambda: clf.model.predict(one.astype(np.float32), verbose=0), a.runs)
    batch_ms = median_ms(lambda: clf.probs(batch), max(10, a.runs // 5))
    with tempfile.TemporaryDirectory() as tmp:
        path = export.export(a.model, "tflite", Path(tmp) / "m.tflite")
        interp = tf.lite.Interpreter(model_path=str(path), num_threads=os.cpu_count())
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        def lite():
            interp.set_tensor(inp, one.astype(np.float32))
            interp.invoke()
            return interp.get_tensor(out)

        tflite = median_ms(lite, a.runs)
    print(f"{'one face, maskdet Classifier.probs (compiled tf.function)':60s} {ours:8.2f} ms")
    print(f"{'one face, model.predict':60s} {predict:8.2f} ms   ({predict / ours:.1f}x slower)")
    print(f"{'one face, TFLite interpreter':60s} {tflite:8.2f} ms")
    print(f"{'batch of 64, Classifier.probs':60s} {64000 / batch_ms:8.0f} images/s")


if __name__ == "__main__":
    main()
