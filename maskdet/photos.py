"""A photo classified: its faces found (maskdet/faces.py), each classified, and the photo's verdict; or the
whole image taken for one face, as the training crops are."""

from __future__ import annotations

import numpy as np

from . import config, images
from .infer import Classifier

# "auto" takes an image for a face crop like the training images (not a scene) when its one found
# face covers at least this share of it (a facemask-12k crop's face box covers 0.49-0.84 of it,
# 10th-90th percentile), or when no face is found in an image no larger than CROP_MAX_SIDE pixels
# (MTCNN misses about one tight masked crop in six: it wants some context around a face).
CROP_FACE_SHARE = 0.4
CROP_MAX_SIDE = 256
PHOTO_MODES = ("auto", "scene", "crop")


def classify_photo(
    classifier: Classifier, source, mode: str = "auto", margin: float | None = None, doubtful: bool = False
) -> dict:
    """Any user image -> its faces, each with a box and a label, and the photo's verdict.

    mode "scene" finds the faces and classifies each (all in one batch); "crop" takes the whole image
    for one face, as the training images are; "auto" decides (see CROP_FACE_SHARE) and says so.
    Returns {"mode", "faces": [{"box": [xmin, ymin, xmax, ymax], "p_mask", "label", "face_score",
    "found_by"}], "counts": {label: n}, "verdict", "size": [w, h], "error", "note"}; with `doubtful`,
    also "doubtful": the boxes that may not be faces (face_score, found_by; never labelled). A face's
    label is "uncertain" when P(mask) lies in the middle (config.UNCERTAIN_SHARE); the verdict
    is verdict() of the labels. Boxes are pixels of the image after its EXIF rotation. An unreadable
    image gets its reason in "error" (and mode None, no faces) instead of an exception.
    """
    from . import faces as face_finder

    if mode not in PHOTO_MODES:
        raise ValueError(f"mode must be one of {', '.join(PHOTO_MODES)}, not {mode!r}")
    margin = face_finder.FACE_MARGIN if margin is None else margin
    try:
        image = images.open_image(source)
    except images.ImageError as exc:
        return _photo_result(None, [], None, note=None, error=str(exc))
    size = [image.width, image.height]
    if mode == "crop":
        return _classify_whole(classifier, image, "crop mode asked for: the whole image is taken for one face")

    everything = face_finder.find_faces(image, doubtful=True)
    found = [f for f in everything if f.confirmed]
    unsure = (
        [
            {"box": list(f.box), "face_score": f.score, "found_by": list(f.found_by)}
            for f in everything
            if not f.confirmed
        ]
        if doubtful
        else None
    )
    if mode == "auto":
        whole = _crop_reason(found, image)
        if whole:
            return _classify_whole(classifier, image, whole)
    if not found:
        return _photo_result(
            "scene",
            [],
            size,
            doubtful=unsure,
            note="no face found (faces under about 20 px, turned away or mostly hidden are missed); "
            "if the image is one face, classify it in crop mode",
        )
    crops = face_finder.face_crops(image, [f.box for f in found], margin)
    probs = classifier.probs(np.stack([images.to_array(c) for c in crops]))
    result = [
        {
            "box": list(f.box),
            "p_mask": float(p),
            "label": face_label(classifier, float(p)),
            "face_score": f.score,
            "found_by": list(f.found_by),
        }
        for f, p in zip(found, probs)
    ]
    note = f"{len(found)} face{'s' if len(found) != 1 else ''} found"
    return _photo_result("scene", result, size, note=note, doubtful=unsure)


def face_label(classifier: Classifier, p_mask: float) -> str:
    """The face's label, or "uncertain" when P(mask) is in the middle (config.UNCERTAIN_SHARE)."""
    t = classifier.threshold
    if t * (1 - config.UNCERTAIN_SHARE) < p_mask < t + (1 - t) * config.UNCERTAIN_SHARE:
        return config.UNCERTAIN
    return classifier.label(p_mask)


def verdict(faces: list[dict]) -> str:
    """The photo's label from its faces' labels: "without_mask" when any face is labelled without a mask
    (one bare face is what a mask check looks for), "with_mask" when every labelled face wears one,
    "uncertain" when all its faces are uncertain, "no_face" when there is none. Uncertain faces never
    decide: a photo of masked people and one doubtful face is "with_mask"."""
    labels = {f.get("label") for f in faces}
    for label in (config.CLASS_NAMES[1], config.CLASS_NAMES[0], config.UNCERTAIN):
        if label in labels:
            return label
    return "no_face"


def counts(faces: list[dict]) -> dict:
    """{"with_mask": n, "without_mask": n, "uncertain": n} over a photo's faces."""
    labels = [f.get("label") for f in faces]
    return {label: labels.count(label) for label in (*config.CLASS_NAMES, config.UNCERTAIN)}


def _photo_result(mode, faces: list[dict], size, note, error=None, doubtful=None) -> dict:
    result = {
        "mode": mode,
        "faces": faces,
        "counts": counts(faces),
        "verdict": verdict(faces),
        "size": size,
        "error": error,
        "note": note,
    }
    if doubtful is not None:
        result["doubtful"] = doubtful
    return result


def _crop_reason(found, image) -> str | None:
    """Why auto mode takes the image for a tight face crop, or None when it is a scene."""
    area = image.width * image.height
    if len(found) == 1:
        x0, y0, x1, y1 = found[0].box
        share = (x1 - x0) * (y1 - y0) / area
        if share >= CROP_FACE_SHARE:
            return f"one face covers {share:.0%} of the image: taken for a face crop and classified whole"
    if not found and max(image.size) <= CROP_MAX_SIDE:
        return (
            f"no face found in this small image ({image.width}x{image.height}): taken for a face crop "
            "and classified whole"
        )
    return None


def _classify_whole(classifier: Classifier, image, note: str) -> dict:
    p = float(classifier.probs(images.to_array(image)[None])[0])
    face = {
        "box": [0, 0, image.width, image.height],
        "p_mask": p,
        "label": face_label(classifier, p),
        "face_score": None,
        "found_by": [],
    }
    return _photo_result("crop", [face], [image.width, image.height], note=note)
