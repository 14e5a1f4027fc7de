"""Annotated scene photos (Pascal VOC, like face-mask-scenes): reading them, matching found faces to the
annotated ones, the find-and-classify evaluation, and the annotated faces cut out as crops."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from . import config, dataset, faces, images

INCORRECT = "mask_weared_incorrect"  # the data set's third class; the classifier knows only two
MIN_IOU = 0.3  # a found box this close to an annotated one counts as finding it


@dataclass(frozen=True)
class AnnotatedFace:
    box: tuple[int, int, int, int]  # xmin, ymin, xmax, ymax in pixels
    label: str

    @property
    def short_side(self) -> int:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Scene:
    image: Path
    faces: tuple[AnnotatedFace, ...]


def read_scenes(data_dir: str | Path, limit: int | None = None) -> list[Scene]:
    """A VOC folder (annotations/*.xml naming images in images/) -> its scenes, in file-name order."""
    root = Path(data_dir).expanduser()
    if not (root / "annotations").is_dir() or not (root / "images").is_dir():
        raise dataset.DatasetError(
            f"{root}: not a scenes folder (expected annotations/ with Pascal VOC XML files and images/ with the photos)"
        )
    scenes = []
    for xml in sorted((root / "annotations").glob("*.xml")):
        if limit is not None and len(scenes) >= limit:
            break
        tree = ET.parse(xml).getroot()
        name = tree.findtext("filename") or f"{xml.stem}.jpg"
        image = root / "images" / name
        if not image.exists():  # some VOC exports name the original PNG; the image may be converted
            matches = sorted((root / "images").glob(f"{Path(name).stem}.*"))
            if not matches:
                continue
            image = matches[0]
        annotated = []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            box = tuple(round(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
            annotated.append(AnnotatedFace(box, (obj.findtext("name") or "").strip()))
        scenes.append(Scene(image, tuple(annotated)))
    if not scenes:
        raise dataset.DatasetError(f"{root}: no annotated images found")
    return scenes


iou = faces.iou  # intersection over union of two (xmin, ymin, xmax, ymax) boxes


def match(found_boxes, true_boxes, min_iou: float = MIN_IOU) -> dict[int, int]:
    """One-to-one matching, closest pairs first: {index of a true box: index of the found box}."""
    pairs = sorted(
        ((iou(f, t), ti, fi) for fi, f in enumerate(found_boxes) for ti, t in enumerate(true_boxes)), reverse=True
    )
    matched, used = {}, set()
    for overlap, ti, fi in pairs:
        if overlap < min_iou:
            break
        if ti not in matched and fi not in used:
            matched[ti] = fi
            used.add(fi)
    return matched


def evaluate_scenes(
    classifier,
    data_dir: str | Path,
    min_side: int = config.MIN_FACE_SIDE,
    limit: int | None = None,
    progress=None,
    part: tuple[int, int] | None = None,
) -> dict:
    """Find and classify the faces of every annotated photo; score them against the annotations.

    Counted are annotated faces at least `min_side` pixels on the short side: the share found (a box
    with IoU >= MIN_IOU), and the share found and labelled right, per class and over the two classes
    the model knows (INCORRECT faces are reported apart: the model can only call them one or the
    other; a face labelled uncertain is found, not right). A false box is a face the app reports that
    overlaps no annotated face of any size or class at IoU >= MIN_IOU; a duplicate is a second box
    on one annotated face. `part` (k, n) takes the photos whose place in file order is k modulo n
    (the two halves: (0, 2) and (1, 2)).
    """
    from .photos import classify_photo

    scenes = read_scenes(data_dir, limit)
    if part is not None:
        scenes = scenes[part[0] :: part[1]]
    labels = (*config.CLASS_NAMES, config.UNCERTAIN)
    per_class = {
        c: {"faces": 0, "found": 0, "right": 0, "predicted": {k: 0 for k in labels}}
        for c in (*config.CLASS_NAMES, INCORRECT)
    }
    false_boxes = {k: 0 for k in labels}
    duplicates, single_face_photos, single_face_duplicates = 0, 0, 0
    errors = []
    for n, scene in enumerate(scenes, 1):
        result = classify_photo(classifier, scene.image, mode="scene")
        if result["error"]:
            errors.append(result["error"])
            continue
        found = result["faces"]
        boxes, truths = [f["box"] for f in found], [t.box for t in scene.faces]
        matched = match(boxes, truths)
        for f in found:
            if all(iou(f["box"], t) < MIN_IOU for t in truths):
                false_boxes[f["label"]] += 1
        extra = sum(max(0, sum(iou(b, t) >= MIN_IOU for b in boxes) - 1) for t in truths)
        duplicates += extra
        if len(truths) == 1:
            single_face_photos += 1
            single_face_duplicates += extra
        for ti, truth in enumerate(scene.faces):
            if truth.short_side < min_side or truth.label not in per_class:
                continue
            c = per_class[truth.label]
            c["faces"] += 1
            if ti in matched:
                label = found[matched[ti]]["label"]
                c["found"] += 1
                c["predicted"][label] += 1
                c["right"] += label == truth.label
        if progress:
            progress(n, len(scenes))

    def share(k, v):
        return v / k if k else None

    images = len(scenes) - len(errors)
    report = {
        "data": str(data_dir),
        "images": images,
        "min_side": min_side,
        "min_iou": MIN_IOU,
        "part": list(part) if part else None,
        "errors": errors,
        "per_class": {},
    }
    for cls, c in per_class.items():
        report["per_class"][cls] = {
            "faces": c["faces"],
            "found": share(c["faces"], c["found"]),
            **({"found_and_right": share(c["faces"], c["right"])} if cls != INCORRECT else {}),
            "predicted": c["predicted"],
            **({"false_boxes_per_image": share(images, false_boxes[cls])} if cls != INCORRECT else {}),
        }
    known = [per_class[c] for c in config.CLASS_NAMES]
    total = sum(c["faces"] for c in known)
    report.update(
        faces=total,
        found=share(total, sum(c["found"] for c in known)),
        found_and_right=share(total, sum(c["right"] for c in known)),
        # the classes are unbalanced (mostly masked faces): the mean of the two is the fairer figure
        balanced_found_and_right=(
            sum(share(c["faces"], c["right"]) for c in known) / 2 if all(c["faces"] for c in known) else None
        ),
        uncertain=share(total, sum(c["predicted"][config.UNCERTAIN] for c in known)),
        false_boxes_per_image=share(images, sum(false_boxes.values())),
        duplicates_per_image=share(images, duplicates),
        single_face_photos=single_face_photos,
        single_face_duplicates=single_face_duplicates,
    )
    return report


def scene_face_crops(
    data_dir: str | Path,
    min_side: int = config.MIN_FACE_SIDE,
    margin: float = faces.FACE_MARGIN,
    limit: int | None = None,
) -> list[tuple]:
    """The annotated with_mask / without_mask faces of a scenes folder, at least `min_side` pixels on the
    short side, cut out as classify_photo cuts found faces: [(PIL crop, label)], in file order."""
    crops = []
    for scene in read_scenes(data_dir, limit):
        wanted = [t for t in scene.faces if t.label in config.CLASS_NAMES and t.short_side >= min_side]
        if not wanted:
            continue
        image = images.open_image(scene.image)
        crops += zip(faces.face_crops(image, [t.box for t in wanted], margin), [t.label for t in wanted])
    return crops
