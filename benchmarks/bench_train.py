"""Training throughput, side by side in one run: our pipeline (JPEG files -> decode once -> tf.data
with augmentation) against the same model on tensors already in memory (the compute limit), and
against the seed's Keras ImageDataGenerator.flow_from_directory feeding the same model.

    python benchmarks/bench_train.py [--data DIR] [--images 2048] [--epochs 3] [--alpha 0.25]
"""

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from maskdet import config, dataset, model as model_lib, pipeline  # noqa: E402


def epoch_timer():
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t)

    t = Timer()
    t.times = []
    return t


def fit(ds, n_images, epochs, alpha, steps=None):
    model = model_lib.compile_model(model_lib.make_model("mobilenet_scratch", alpha=alpha))
    timer = epoch_timer()
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return [n_images / t for t in timer.times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=config.DATA_DIR)
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=config.DEFAULT_ALPHA)
    ap.add_argument("--batch-size", type=int, default=config.DEFAULT_BATCH_SIZE)
    ap.add_argument("--skip-seed", action="store_true", help="leave out the ImageDataGenerator pipeline")
    a = ap.parse_args()
    import tensorflow as tf

    table = dataset.balanced_sample(dataset.scan(a.data), a.images)
    n, bs = len(table), a.batch_size
    steps = n // bs
    n_used = steps * bs
    print(
        f"# {n_used} images of {a.data}, MobileNet alpha {a.alpha}, batch {bs}, {a.epochs} epochs; "
        f"{platform.node()} {os.cpu_count()} cores, TF {tf.__version__}, {time.strftime('%Y-%m-%d')}"
    )
    results = {}

    # compute limit: one batch already in memory, repeated
    rng = np.random.default_rng(0)
    xb = tf.constant(rng.integers(0, 256, (bs, *config.INPUT_SHAPE)).astype(np.float32))
    yb = tf.constant(rng.integers(0, 2, bs).astype(np.float32))
    mem = tf.data.Dataset.from_tensors((xb, yb)).repeat()
    results["in-memory tensors (compute limit)"] = fit(mem, n_used, a.epochs, a.alpha, steps)

    # ours: decode the JPEGs once (timed into epoch 1), then the tf.data pipeline with augmentation
    for augment in (True, False):
        t0 = time.perf_counter()
        pixels = pipeline.load_pixels(table, use_cache=False)
        decode_s = time.perf_counter() - t0
        ds = pipeline.make_dataset(
            pixels[:n_used], dataset.labels_of(table)[:n_used], bs, training=True, augment=augment
        )
        rates = fit(ds, n_used, a.epochs, a.alpha)
        rates[0] = n_used / (n_used / rates[0] + decode_s)
        results[f"maskdet pipeline, augment={augment} (epoch 1 incl. decode {decode_s:.1f} s)"] = rates

    if not a.skip_seed:  # the seed's way: Keras' legacy generator, per-epoch JPEG decode in Python
        from keras.src.legacy.preprocessing.image import ImageDataGenerator

        with tempfile.TemporaryDirectory() as tmp:
            for path, label in zip(table["path"][:n_used], table["label"][:n_used]):
                (Path(tmp) / label).mkdir(exist_ok=True)
                n = len(os.listdir(Path(tmp) / label))
                os.symlink(os.path.abspath(path), Path(tmp) / label / f"{n}_{Path(path).name}")
            gen = ImageDataGenerator(
                rotation_range=40,
                width_shift_range=0.2,
                height_shift_range=0.2,
                shear_range=0.2,
                zoom_range=0.2,
                horizontal_flip=True,
                fill_mode="nearest",
            )
            flow = gen.flow_from_directory(tmp, target_size=config.IMAGE_SIZE, batch_size=bs, class_mode="binary")
            results["seed: ImageDataGenerator.flow_from_directory"] = fit(flow, n_used, a.epochs, a.alpha, steps)

    limit = np.mean(results["in-memory tensors (compute limit)"][1:])
    print(f"{'pipeline':70s} {'epoch 1':>9s} {'epoch 2+':>9s} {'ratio 2+':>9s}   (images/s)")
    for name, rates in results.items():
        later = np.mean(rates[1:])
        print(f"{name:70s} {rates[0]:9.0f} {later:9.0f} {later / limit:9.2f}")


if __name__ == "__main__":
    main()
