"""Where the model looked: Grad-CAM heat maps for the classifier, and drawing them over the image.

maskdet's model is Input -> Rescaling -> MobileNet backbone (a nested functional model named like
"mobilenet_0.25_100") -> Dropout -> Dense(sigmoid). Grad-CAM weighs a backbone feature map by the
gradient of the logit of the class shown and keeps the positive part. At 100x100 input the very last
feature map is only 3x3 cells, too coarse to show a mouth from an eye, so by default the deepest
layer with at least MIN_CELLS x MIN_CELLS cells is used (6x6 on the default MobileNet).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import config

MIN_CELLS = 6


def _backbone(model):
    """The nested feature extractor of the classifier, or the model itself when nothing is nested."""
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested[-1] if nested else model


def feature_layers(model) -> list[str]:
    """Names of the backbone layers that give a spatial feature map, shallowest first."""
    backbone = _backbone(model)
    names = []
    for layer in backbone.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if (
            len(shape) == 4
            and layer.name not in [i.name for i in backbone.inputs]
            and type(layer).__name__ in ("ReLU", "Activation", "Conv2D", "DepthwiseConv2D", "Add", "Concatenate")
        ):
            names.append(layer.name)
    return names


def default_layer(model, min_cells: int = MIN_CELLS) -> str:
    """The deepest activation layer whose feature map has at least min_cells x min_cells cells."""
    backbone = _backbone(model)
    names = feature_layers(model)
    if not names:
        raise ValueError(f"{model.name}: no convolutional feature map to explain")
    fine = [n for n in names if min(backbone.get_layer(n).output.shape[1:3]) >= min_cells]
    relus = [n for n in fine if type(backbone.get_layer(n)).__name__ in ("ReLU", "Activation")]
    return (relus or fine or names)[-1]


@lru_cache(maxsize=8)
def _explainer(model, layer: str):
    """A function pixels -> (feature map, logit of P(with mask)) built from the model's own layers."""
    import keras
    import tensorflow as tf

    backbone = _backbone(model)
    features = keras.Model(backbone.inputs, [backbone.get_layer(layer).output, backbone.output])
    if backbone is model:

        def run(x):
            fmap, p = features(x, training=False)
            p = tf.clip_by_value(tf.reshape(p, [-1]), 1e-7, 1 - 1e-7)
            return fmap, tf.math.log(p / (1 - p))

        return run

    top = model.layers
    at = top.index(backbone)
    before = [layer for layer in top[1:at] if not isinstance(layer, keras.layers.InputLayer)]
    after = top[at + 1 :]

    def run(x):
        for layer in before:
            x = layer(x, training=False)
        fmap, h = features(x, training=False)
        for k, layer in enumerate(after):
            last = k == len(after) - 1
            if last and isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.sigmoid:
                h = tf.matmul(h, layer.kernel) + layer.bias  # the logit: gradients do not vanish at p ~ 0 or 1
            else:
                h = layer(h, training=False)
        h = tf.reshape(h, [-1])
        if not (
            after and isinstance(after[-1], keras.layers.Dense) and after[-1].activation is keras.activations.sigmoid
        ):
            p = tf.clip_by_value(h, 1e-7, 1 - 1e-7)
            h = tf.math.log(p / (1 - p))
        return fmap, h

    return run


def grad_cam(model, pixels: np.ndarray, target: str | list[str] | None = None, layer: str | None = None) -> np.ndarray:
    """Grad-CAM heat maps, (N, H, W) float in [0, 1] at the model's input size, for (N, H, W, 3) uint8 pixels.

    `target` is the class to explain per image (config.CLASS_NAMES): the model's own prediction
    when None. A map shows where evidence FOR that class lies; a flat map (all zeros) means nothing
    in the image spoke for it.
    """
    import tensorflow as tf

    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[None]
    layer = layer or default_layer(model)
    run = _explainer(model, layer)
    x = tf.convert_to_tensor(pixels.astype(np.float32))
    with tf.GradientTape() as tape:
        fmap, logit = run(x)
        total = tf.reduce_sum(logit)  # each logit depends on its own image only, so one gradient serves all
    grads = tape.gradient(total, fmap)
    if target is None:
        sign = np.where(logit.numpy() >= 0, 1.0, -1.0)
    else:
        targets = [target] * len(pixels) if isinstance(target, str) else list(target)
        sign = np.array([1.0 if t == config.POSITIVE_CLASS else -1.0 for t in targets])
    grads = grads * sign.astype(np.float32)[:, None, None, None]
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1)).numpy()
    h, w = pixels.shape[1:3]
    out = np.zeros((len(cam), h, w), np.float32)
    for i, c in enumerate(cam):
        peak = float(c.max())
        if peak > 0:
            c = c / peak
        out[i] = np.asarray(Image.fromarray(c.astype(np.float32)).resize((w, h), Image.Resampling.BILINEAR))
    return np.clip(out, 0.0, 1.0)


def stored_grad_cam(model_path, hashes: list[str], pixels_of, load_model) -> np.ndarray:
    """grad_cam() of images named by their content hash, each explaining the model's own prediction, kept on
    disk per model file (named by its content): a restart reads them back without TensorFlow. `pixels_of(i)`
    gives image i's model input; `load_model()` is called only when some maps are not stored yet."""
    from . import files, runs

    where = config.CACHE_DIR / f"gradcam-{runs.sha256_of(Path(model_path))[:24]}.pkl"
    try:
        stored = pd.read_pickle(where)
    except Exception:  # none yet, or torn: only a cache
        stored = {}
    missing = [i for i, h in enumerate(hashes) if h not in stored]
    if missing:
        heat = grad_cam(load_model(), np.stack([pixels_of(i) for i in missing]))
        stored.update({hashes[i]: (h * 255).round().astype(np.uint8) for i, h in zip(missing, heat)})
        try:
            config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
            files.save_pickle_atomic(where, stored)
        except OSError:  # a read-only cache folder: the maps still serve this time
            pass
    return np.stack([stored[h].astype(np.float32) / 255 for h in hashes])


# Colour map for heat maps: dark blue (nothing) -> cyan -> yellow -> red (strongest evidence).
_STOPS = np.array([[0, 0, 96], [0, 160, 255], [255, 230, 0], [230, 20, 0]], np.float32)


def colourise(heat: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours."""
    pos = np.clip(heat, 0, 1) * (len(_STOPS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_STOPS) - 2)
    frac = (pos - lo)[..., None]
    return (_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, strength: float = 0.5, size: int | None = None) -> Image.Image:
    """The image with the heat map laid over it; hot areas are coloured more, cold ones keep the photo."""
    image = image.convert("RGB")
    if size:
        scale = size / max(image.size)
        image = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
        )
    heat_img = Image.fromarray(heat.astype(np.float32)).resize(image.size, Image.Resampling.BILINEAR)
    h = np.clip(np.asarray(heat_img), 0, 1)
    colours = colourise(h).astype(np.float32)
    alpha = (strength * (0.25 + 0.75 * h))[..., None]
    mixed = np.asarray(image, np.float32) * (1 - alpha) + colours * alpha
    return Image.fromarray(mixed.clip(0, 255).astype(np.uint8))
