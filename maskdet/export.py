"""Exporting a model for serving elsewhere: TFLite, a TensorFlow SavedModel or ONNX."""

from __future__ import annotations

from pathlib import Path

from . import config, infer

FORMATS = ("tflite", "saved_model", "onnx")

# The ONNX opset written: tf2onnx's own default, read by every current runtime (onnxruntime >= 1.10,
# OpenVINO, TensorRT); nothing in maskdet's models (Conv, depthwise Conv, Clip for ReLU6, Resize,
# GlobalAveragePool, MatMul, Sigmoid) needs a newer one. Fixed here so a tf2onnx upgrade cannot move it.
ONNX_OPSET = 15
ONNX_INPUT = "image"
ONNX_OUTPUT = "p_mask"


def to_onnx(model) -> bytes:
    """A Keras classifier as an ONNX model: input `image` (N, 100, 100, 3) float32 raw 0-255 RGB (the
    rescaling is inside the model, as in Keras), output `p_mask` (N, 1) = P(with_mask).

    Converted by tf2onnx.convert.from_keras, which folds the constants a layer makes when it is built (a
    Normalization layer's mean and variance; converting a tf.function of the model instead turned them
    into two extra inputs), with the output renamed so that every model has the same input and output
    names (from_keras names it after the model's last layer)."""
    import logging

    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"ONNX export needs tf2onnx and onnx ({exc}): pip install -r requirements.txt"
        ) from None

    spec = (tf.TensorSpec([None, *config.INPUT_SHAPE], tf.float32, name=ONNX_INPUT),)
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # its INFO lines, where a caller's logging shows INFO
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    (output,) = proto.graph.output
    for node in proto.graph.node:
        node.output[:] = [ONNX_OUTPUT if name == output.name else name for name in node.output]
    output.name = ONNX_OUTPUT
    proto.doc_string = (
        f"maskdet face-mask classifier. Input {ONNX_INPUT!r}: float32 (N, {config.IMAGE_SIZE[0]}, "
        f"{config.IMAGE_SIZE[1]}, 3), raw 0-255 RGB face crops (preprocessing is inside the "
        f"model). Output {ONNX_OUTPUT!r}: (N, 1), P({config.POSITIVE_CLASS}). maskdet scores a face "
        "with a from-scratch backbone as the mean of this output for the face and its mirror image."
    )
    return proto.SerializeToString()


def export(model_path: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write the model as `fmt` ("tflite", "saved_model" or "onnx"); returns the path written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use {', '.join(FORMATS)}")
    model = infer.load_model(model_path)
    model_path = Path(model_path)
    if fmt == "tflite":
        out = Path(out or model_path.with_suffix(".tflite"))
        out.write_bytes(infer.to_tflite(model))
    elif fmt == "saved_model":
        out = Path(out or model_path.with_suffix(""))
        model.export(str(out), format="tf_saved_model", verbose=False)
    else:
        out = Path(out or model_path.with_suffix(".onnx"))
        onnx_bytes = to_onnx(model)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(onnx_bytes)
    return out
