"""Loading a model safely, preprocessing any user image, classifying face crops."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import config, data


class ModelError(ValueError):
    """A file that cannot serve as the classifier; the message says why, for a user."""


def load_model(path: str | Path = config.DEFAULT_MODEL):
    """Load a .keras classifier with safe_mode and check it fits maskdet's input and output."""
    import keras

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such model file")
    if path.suffix != ".keras":
        raise ModelError(f"{path}: not a .keras model file")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelError(f"{path}: refused: the model holds code (a Lambda layer) that would run on "
                             "load; only models without custom code are loaded (Keras safe_mode)") from None
        raise ModelError(f"{path}: not a loadable Keras model ({str(exc).splitlines()[0][:200]})") from None
    except Exception as exc:  # zip errors, missing config, unknown layers
        raise ModelError(f"{path}: not a loadable Keras model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    in_shape = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    out_shape = tuple(model.output_shape[1:]) if not isinstance(model.output_shape, list) else None
    if in_shape != config.INPUT_SHAPE:
        raise ModelError(f"{path}: the model takes input {in_shape}, maskdet feeds {config.INPUT_SHAPE}")
    if out_shape != (1,):
        raise ModelError(f"{path}: the model outputs {out_shape}; maskdet needs one sigmoid probability (1,)")
    return model


class Classifier:
    """A loaded model behind one compiled function: ~2 ms a face instead of model.predict's ~30 ms."""

    def __init__(self, model, threshold: float = 0.5):
        import tensorflow as tf

        self.model = model
        self.threshold = threshold
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec([None, *config.INPUT_SHAPE], tf.float32)])

    @classmethod
    def load(cls, path: str | Path = config.DEFAULT_MODEL, threshold: float = 0.5) -> "Classifier":
        return cls(load_model(path), threshold)

    def probs(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, H, W, 3) uint8 pixels -> (N,) P(with mask)."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        out = [np.asarray(self._fn(pixels[i:i + batch_size].astype(np.float32))).reshape(-1)
               for i in range(0, len(pixels), batch_size)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def label(self, p_mask: float) -> str:
        return config.CLASS_NAMES[0] if p_mask >= self.threshold else config.CLASS_NAMES[1]

    def classify_crops(self, images) -> list[dict]:
        """Face crops (any image source) -> [{"p_mask", "label", "error"}], one per input, in order.
        A bad input gets its error and no probability; the others are still classified."""
        results, arrays, where = [], [], []
        for i, src in enumerate(images):
            try:
                arrays.append(data.to_array(data.open_image(src)))
                where.append(i)
                results.append({"p_mask": None, "label": None, "error": None})
            except data.ImageError as exc:
                results.append({"p_mask": None, "label": None, "error": str(exc)})
        if arrays:
            for i, p in zip(where, self.probs(np.stack(arrays))):
                results[i].update(p_mask=float(p), label=self.label(float(p)))
        return results
