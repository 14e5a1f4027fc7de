"""No false faces (issue 14): one box per face, boxes only where finders agree, and a photo's verdict that
one doubtful box cannot flip. Real photos from face-mask-scenes and real face crops from facemask-12k."""

import json
import random

import numpy as np
import pytest
from PIL import Image

from conftest import SCENES, cli, need_shared
from maskdet import boxes, config, faces, gallery, images, infer, photos, scenes

pytestmark = pytest.mark.shared

# Photos of face-mask-scenes in which every annotated face wears a mask, and the finder before this
# change still reported a bare face (a hand, a phone, hair): the verdict was "without_mask".
MASKED_CROWDS = [
    "maksssksksss184.jpg",
    "maksssksksss231.jpg",
    "maksssksksss676.jpg",
    "maksssksksss705.jpg",
    "maksssksksss706.jpg",
]
CROWD = "maksssksksss74.jpg"  # 26 annotated faces; 40 boxes came back before, overlapping ones among them


@pytest.fixture(scope="module")
def by_name():
    return {s.image.name: s for s in scenes.read_scenes(need_shared(SCENES))}


@pytest.fixture(scope="module")
def classifier():
    if not config.DEFAULT_MODEL.exists():
        pytest.skip("the shipped model is needed to judge labels")
    return infer.Classifier.load(config.DEFAULT_MODEL)


def overlapping(found) -> list:
    return [
        (a, b)
        for i, a in enumerate(found)
        for b in found[i + 1 :]
        if boxes.iou(a, b) >= faces.SAME_FACE_IOU or boxes.cover(a, b) >= faces.SAME_FACE_COVER
    ]


@pytest.mark.parametrize("name", MASKED_CROWDS)
def test_a_crowd_of_masked_people_is_called_masked(classifier, by_name, name):
    scene = by_name[name]
    assert {t.label for t in scene.faces} == {"with_mask"}
    r = photos.classify_photo(classifier, scene.image, mode="scene")
    assert r["verdict"] == "with_mask", r["faces"]
    assert r["counts"]["with_mask"] >= 1 and r["counts"]["without_mask"] == 0


def test_the_crowd_gets_one_box_a_face_and_no_more_boxes_than_faces(classifier, by_name):
    scene = by_name[CROWD]
    r = photos.classify_photo(classifier, scene.image, mode="scene", doubtful=True)
    found = [f["box"] for f in r["faces"]]
    assert 3 <= len(found) <= len(scene.faces)
    assert not overlapping(found + [d["box"] for d in r["doubtful"]])
    false = [b for b in found if all(boxes.iou(b, t.box) < scenes.MIN_IOU for t in scene.faces)]
    assert len(false) <= 1, false
    # the doubtful boxes are listed apart, unlabelled, and none of them is a face the finders agree on
    assert all(
        "label" not in d
        and (d["face_score"] < 1 or min(d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]) < faces.MIN_LABEL_SIDE)
        for d in r["doubtful"]
    )


def camera_frame(crop: Image.Image, height_share: float, rng, at: tuple[int, int] | None = None) -> Image.Image:
    """A 640x480 camera-like frame: one real face crop, scaled to a share of the frame's height, on a
    room-like background (a lit wall with sensor noise)."""
    side = round(480 * height_share)
    face = crop.resize((side, side), Image.Resampling.BICUBIC)
    wall = np.linspace(90, 200, 640)[None, :, None] * np.array([1.0, 0.95, 0.85]) * np.ones((480, 1, 1))
    frame = Image.fromarray(np.clip(wall + rng.normal(0, 6, wall.shape), 0, 255).astype(np.uint8))
    x, y = at or (int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side)))
    frame.paste(face, (x, y))
    return frame


def test_one_face_in_a_camera_frame_gets_one_box(facemask_dir):
    """120 real face crops, 60 of each class drawn at random, as camera frames at three sizes: never two
    boxes, and nearly all found."""
    rng = np.random.default_rng(11)
    crops = []
    for cls in config.CLASS_NAMES:
        crops += random.Random(5).sample(sorted((facemask_dir / cls).glob("*")), 60)
    one = 0
    for n, path in enumerate(crops):
        frame = camera_frame(images.open_image(path), (0.35, 0.55, 0.75)[n % 3], rng)
        found = faces.find_faces(frame)
        assert len(found) <= 1, (path, [f.box for f in found])
        one += len(found) == 1
    assert one >= 0.95 * len(crops), f"{one} of {len(crops)} frames had their face found"


@pytest.mark.xfail(strict=True, reason="known: behind glasses and a striped mask, each eye is taken for a face")
def test_glasses_over_a_striped_mask_get_one_box(facemask_dir):
    crop = images.open_image(facemask_dir / "with_mask" / "train_Augmented_813_2689568.jpg")
    found = faces.find_faces(camera_frame(crop, 0.55, np.random.default_rng(7), at=(328, 79)))
    assert len(found) <= 1, [f.box for f in found]


def test_single_face_scene_photos_get_no_second_box(by_name):
    single = [s for s in by_name.values() if len(s.faces) == 1][:25]
    assert len(single) >= 20
    for scene in single:
        found = [f.box for f in faces.find_faces(images.open_image(scene.image))]
        on_face = [b for b in found if boxes.iou(b, scene.faces[0].box) >= scenes.MIN_IOU]
        assert len(on_face) <= 1 and not overlapping(found), (scene.image.name, found)


def test_rnet_with_no_candidates_answers_without_an_error(capfd):
    """A photo where MTCNN's first stage proposes nothing that survives: RNet and ONet get no candidates
    and answer empty outputs; TensorFlow logs no 'Incompatible shapes' error."""
    faces.detector()
    capfd.readouterr()
    blank = Image.new("RGB", (300, 200), (120, 120, 120))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    assert faces.find_faces(blank) == [] and faces.find_faces(noise) == []
    for stage, side in zip(faces.detector().stages[1:], (24, 48)):  # RNet, ONet
        outs = stage._model(np.zeros((0, side, side, 3), np.float32))
        assert len(outs) >= 2 and all(o.shape[0] == 0 for o in outs)
    err = capfd.readouterr().err
    assert "Incompatible shapes" not in err and "INVALID_ARGUMENT" not in err


def test_the_verdict_follows_the_labelled_faces_and_never_an_uncertain_one():
    def f(label):
        return {"label": label}

    assert photos.verdict([f("with_mask"), f("with_mask")]) == "with_mask"
    assert photos.verdict([f("with_mask"), f("without_mask")]) == "without_mask"
    assert photos.verdict([f("with_mask"), f(config.UNCERTAIN)]) == "with_mask"
    assert photos.verdict([f(config.UNCERTAIN)]) == config.UNCERTAIN
    assert photos.verdict([]) == "no_face"
    assert photos.counts([f("with_mask"), f(config.UNCERTAIN)]) == {
        "with_mask": 1,
        "without_mask": 0,
        config.UNCERTAIN: 1,
    }


def test_a_middling_p_mask_is_uncertain_at_any_threshold(classifier):
    assert photos.face_label(classifier, 0.5) == config.UNCERTAIN
    assert photos.face_label(classifier, 0.9) == "with_mask" and photos.face_label(classifier, 0.1) == "without_mask"
    strict = infer.Classifier(classifier.model, threshold=0.9)
    assert photos.face_label(strict, 0.97) == "with_mask"  # 0.9 + 0.1 * UNCERTAIN_SHARE = 0.95
    assert photos.face_label(strict, 0.6) == config.UNCERTAIN and photos.face_label(strict, 0.3) == "without_mask"


@pytest.mark.slow
def test_cli_evaluate_scenes_counts_false_boxes_and_duplicates(by_name):
    proc = cli("evaluate-scenes", "--data", SCENES, "--limit", 12, "--json", check=True)
    m = json.loads(proc.stdout)
    assert m["images"] == 12 and m["duplicates_per_image"] == 0
    assert 0 <= m["false_boxes_per_image"] <= 0.5 and m["found"] >= 0.85
    assert set(m["per_class"]["with_mask"]["predicted"]) == {*config.CLASS_NAMES, config.UNCERTAIN}


def test_tags_on_a_crowd_never_overlap_each_other_nor_a_face(classifier, by_name):
    """The drawn photo of the most crowded scenes: each face's number sits outside every face box and
    clear of every other tag, so the list beside the photo can be matched to it."""
    for scene in (by_name[n] for n in ("maksssksksss705.jpg", "maksssksksss706.jpg", "maksssksksss251.jpg")):
        r = photos.classify_photo(classifier, scene.image, mode="scene")
        drawn = gallery.draw_faces(images.open_image(scene.image), r["faces"], numbered=True)
        tags = drawn.info["tags"]
        scale = drawn.width / r["size"][0]
        face_boxes = [tuple(v * scale for v in f["box"]) for f in r["faces"]]
        assert len(tags) == len(r["faces"]) >= 10
        assert drawn.width >= 900  # a small photo is enlarged so a crowd's numbers are readable
        for i, tag in enumerate(tags):
            assert all(boxes.intersection(tag, other) == 0 for other in tags[i + 1 :]), scene.image.name
            assert all(boxes.intersection(tag, box) == 0 for box in face_boxes), scene.image.name
