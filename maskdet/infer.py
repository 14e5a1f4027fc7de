"""Loading a model safely and classifying face crops through it (LiteRT, else Keras); scene photos are
maskdet/photos.py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import config, files, images, litert, runs


class ModelError(ValueError):
    """A file that cannot serve as the classifier; the message says why, for a user."""


def load_model(path: str | Path = config.DEFAULT_MODEL):
    """Load a .keras classifier with safe_mode and check it fits maskdet's input and output."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: not a .keras model file")
    import keras  # after the cheap checks: importing it takes seconds

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelError(
                f"{path}: refused: the model holds code (a Lambda layer) that would run on "
                "load; only models without custom code are loaded (Keras safe_mode)"
            ) from None
        raise ModelError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0][:200]})") from None
    except Exception as exc:  # zip errors, missing config, unknown layers
        raise ModelError(
            f"{path}: not a loadable Keras model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    in_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    out_shape = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if in_shape != config.INPUT_SHAPE:
        raise ModelError(f"{path}: the model takes input {in_shape}, maskdet feeds {config.INPUT_SHAPE}")
    if out_shape != (1,):
        raise ModelError(f"{path}: the model outputs {out_shape}; maskdet needs one sigmoid probability (1,)")
    return model


# The TFLite engine takes this many faces at a time (twice as many images with their mirror images);
# larger batches go through it in chunks, which keeps each interpreter's buffers small. Measured here
# (benchmarks/bench_infer.py): one face 1.05 ms against 8.3 ms through the compiled Keras function,
# batches 853 against 254 faces/s.
LITE_MAX_BATCH = 32


def lite_cache_path(model_path: str | Path) -> Path:
    """Where the TFLite conversion of a model file is cached: named by the file's content, so a
    promoted or retrained file never meets a stale conversion."""
    return config.CACHE_DIR / f"lite-{runs.sha256_of(Path(model_path))[:24]}.tflite"


def to_tflite(model) -> bytes:
    """A Keras classifier as a TFLite flatbuffer (float32, same outputs within ~1e-5)."""
    import contextlib
    import io

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with contextlib.redirect_stdout(io.StringIO()):  # the converter lists every captured tensor
        return converter.convert()


def convert_file(path: str | Path, timeout: float = 600) -> bytes:
    """The TFLite conversion of a .keras file, made by `python -m maskdet export` in a process of its own:
    the converter re-traces and exports the model it is given and prints pages, which must not happen
    beside a server's threads that are using that model (a classification hung behind it once)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="maskdet-lite-") as tmp:
        out = Path(tmp) / "model.tflite"
        proc = subprocess.run(
            [sys.executable, "-m", "maskdet", "export", "--model", str(path), "--format", "tflite", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=str(config.PROJECT_DIR),
        )
        if proc.returncode != 0 or not out.exists():
            raise ModelError(f"{path}: TFLite conversion failed: {proc.stderr.strip()[-300:]}")
        return out.read_bytes()


class Classifier:
    """A loaded model behind two engines: the TFLite interpreter once a conversion of the model file is
    at hand (one face ~1 ms here, batches ~850 faces/s), else one compiled Keras function (~8 ms a face,
    ~250 faces/s; model.predict takes ~100 ms for one face). Thread-safe: the app's sessions share one
    Classifier per model file, each call through an interpreter of its own (maskdet/litert.py)."""

    def __init__(
        self, model, threshold: float = config.DEFAULT_THRESHOLD, lite: bytes | None = None, mirror: bool | None = None
    ):
        import tensorflow as tf

        from . import model as model_lib

        self.model = model
        self.threshold = threshold
        self.mirror = model_lib.scored_with_mirror(model) if mirror is None else mirror
        self._fn = tf.function(
            lambda x: model(x, training=False),
            reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, *config.INPUT_SHAPE], tf.float32)],
        )
        self._lite: litert.LiteModel | None = None
        if lite is not None:
            self.use_lite(lite)

    @property
    def engine(self) -> str:
        return "tflite + keras" if self._lite is not None else "keras"

    @classmethod
    def load(
        cls,
        path: str | Path = config.DEFAULT_MODEL,
        threshold: float = config.DEFAULT_THRESHOLD,
        lite: str = "cached",
        mirror: bool | None = None,
    ) -> Classifier:
        """Load a .keras file. lite: "cached" uses a cached TFLite conversion when there is one,
        "convert" converts now when there is none (a few seconds, then cached), "off" never."""
        clf = cls(load_model(path), threshold, mirror=mirror)
        if lite != "off":
            clf.attach_lite(path, convert=lite == "convert")
        return clf

    def attach_lite(self, path: str | Path, convert: bool = True) -> bool:
        """Serve small batches through the TFLite conversion of the model file at `path` (cached by
        content); returns whether the fast engine is on. A failed conversion keeps the Keras engine."""
        cached = lite_cache_path(path)
        try:
            if cached.exists():  # checked against Keras before it was cached
                self.use_lite(cached.read_bytes(), check=False)
            elif convert:
                blob = convert_file(path)
                self.use_lite(blob)  # checked against Keras before it is cached
                cached.parent.mkdir(parents=True, exist_ok=True)
                files.write_bytes_atomic(cached, blob)
        except Exception:  # a model TFLite cannot take, or a damaged cache file: Keras serves alone
            self._lite = None
        return self._lite is not None

    def use_lite(self, blob: bytes, check: bool = True) -> None:
        """Serve through this TFLite flatbuffer, after checking that it answers as Keras does."""
        lite = litert.LiteModel(blob, as_tensors=False)
        if check:
            probe = np.random.default_rng(0).integers(0, 256, (2, *config.INPUT_SHAPE)).astype(np.float32)
            keras_p = np.asarray(self._fn(probe)).reshape(-1)
            lite_p = np.array([lite(x[None])[0] for x in probe]).reshape(-1)
            if not np.allclose(keras_p, lite_p, atol=1e-4):
                raise ModelError(f"the TFLite conversion answers differently ({lite_p} vs {keras_p})")
        self._lite = lite

    def probs(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, H, W, 3) uint8 pixels -> (N,) P(with mask); with `mirror`, the mean of each face's and its
        mirror image's probability (model.scored_with_mirror says which models are scored so)."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        n = len(pixels)
        if self.mirror:
            pixels = np.concatenate([pixels, pixels[:, :, ::-1]])
        if self._lite is not None:
            step = LITE_MAX_BATCH * (2 if self.mirror else 1)
            chunks = [self._lite(pixels[i : i + step])[0].reshape(-1) for i in range(0, len(pixels), step)]
            p = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        else:
            out = [
                np.asarray(self._fn(pixels[i : i + batch_size].astype(np.float32))).reshape(-1)
                for i in range(0, len(pixels), batch_size)
            ]
            p = np.concatenate(out) if out else np.zeros(0, np.float32)
        return (p[:n] + p[n:]) / 2 if self.mirror else p

    def label(self, p_mask: float) -> str:
        return config.CLASS_NAMES[0] if p_mask >= self.threshold else config.CLASS_NAMES[1]

    def classify_crops(self, crops) -> list[dict]:
        """Face crops (any image source) -> [{"p_mask", "label", "error"}], one per input, in order.
        A bad input gets its error and no probability; the others are still classified."""
        results, arrays, where = [], [], []
        for i, src in enumerate(crops):
            try:
                arrays.append(images.to_array(images.open_image(src)))
                where.append(i)
                results.append({"p_mask": None, "label": None, "error": None})
            except images.ImageError as exc:
                results.append({"p_mask": None, "label": None, "error": str(exc)})
        if arrays:
            for i, p in zip(where, self.probs(np.stack(arrays))):
                results[i].update(p_mask=float(p), label=self.label(float(p)))
        return results
