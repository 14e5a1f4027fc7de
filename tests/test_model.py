"""The classifier and loading models safely."""

import numpy as np
import pytest

from conftest import synthetic_face
from maskdet import config, images, infer, model as model_lib


def test_mobilenet_from_scratch_takes_raw_pixels_and_gives_one_probability():
    m = model_lib.make_model("mobilenet_scratch", alpha=0.25)
    assert m.input_shape == (None, *config.INPUT_SHAPE) and m.output_shape == (None, 1)
    x = np.random.default_rng(0).integers(0, 256, (2, *config.INPUT_SHAPE)).astype(np.float32)
    p = np.asarray(m(x, training=False))
    assert p.shape == (2, 1) and np.all((p > 0) & (p < 1))
    rescale = m.get_layer("rescale")  # preprocessing travels with the model: raw 0-255 pixels in, -1..1 out
    assert np.allclose(np.asarray(rescale(np.array([0.0, 127.5, 255.0], np.float32))), [-1.0, 0.0, 1.0])
    wider = model_lib.make_model("mobilenet_scratch", alpha=0.5)
    assert wider.count_params() > m.count_params()


def test_saved_model_loads_safely_and_classifies_every_input(tmp_path):
    path = tmp_path / "m.keras"
    model_lib.make_model("mobilenet_scratch", alpha=0.25).save(path)
    clf = infer.Classifier.load(path)
    face = tmp_path / "face.png"
    synthetic_face(True, 3).save(face)
    results = clf.classify_crops(
        [face, face.read_bytes(), b"garbage", tmp_path / "missing.jpg", synthetic_face(False, 4)]
    )
    assert [r["error"] is None for r in results] == [True, True, False, False, True]
    assert results[0]["p_mask"] == pytest.approx(results[1]["p_mask"], abs=1e-6)
    assert results[0]["label"] in config.CLASS_NAMES
    assert "not an image" in results[2]["error"] and "no such file" in results[3]["error"]
    # the compiled path gives model.predict's numbers: for each face and its mirror image, and their mean
    x = np.stack([images.to_array(synthetic_face(i % 2 == 0, 20 + i)) for i in range(3)])
    plain = clf.model.predict(x.astype(np.float32), verbose=0).ravel()
    mirrored = clf.model.predict(x[:, :, ::-1].astype(np.float32), verbose=0).ravel()
    np.testing.assert_allclose(infer.Classifier(clf.model, mirror=False).probs(x), plain, atol=1e-5)
    np.testing.assert_allclose(clf.probs(x), (plain + mirrored) / 2, atol=1e-5)


def test_bad_model_files_are_refused_with_a_reason(tmp_path):
    import keras

    with pytest.raises(infer.ModelError, match="no such model"):
        infer.load_model(tmp_path / "none.keras")
    (tmp_path / "text.keras").write_text("hello")
    with pytest.raises(infer.ModelError, match="not a loadable Keras model"):
        infer.load_model(tmp_path / "text.keras")
    small = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    small.save(tmp_path / "small.keras")
    with pytest.raises(infer.ModelError, match=r"takes input \(64, 64, 3\)"):
        infer.load_model(tmp_path / "small.keras")
    two = keras.Sequential(
        [keras.Input(config.INPUT_SHAPE), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)]
    )
    two.save(tmp_path / "two.keras")
    with pytest.raises(infer.ModelError, match="outputs"):
        infer.load_model(tmp_path / "two.keras")
    lam = keras.Sequential(
        [
            keras.Input(config.INPUT_SHAPE),
            keras.layers.Lambda(lambda x: x * 2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    lam.save(tmp_path / "lambda.keras")
    with pytest.raises(infer.ModelError, match="Lambda"):
        infer.load_model(tmp_path / "lambda.keras")
