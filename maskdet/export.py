"""Exporting a model for serving elsewhere: TFLite or a TensorFlow SavedModel."""
from __future__ import annotations

from pathlib import Path

from . import infer


def export(model_path: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Write the model as `fmt` ("tflite" or "saved_model"); returns the path written."""
    model = infer.load_model(model_path)
    model_path = Path(model_path)
    if fmt == "tflite":
        out = Path(out or model_path.with_suffix(".tflite"))
        out.write_bytes(infer.to_tflite(model))
    elif fmt == "saved_model":
        out = Path(out or model_path.with_suffix(""))
        model.export(str(out), format="tf_saved_model", verbose=False)
    else:
        raise ValueError(f"unknown export format {fmt!r}: use tflite or saved_model")
    return out
