"""ONNX export: the file `python -m maskdet export --format onnx` writes answers as the Keras model does.

Real TensorFlow, real tf2onnx, real onnxruntime; images read the way maskdet reads them
(images.open_image + images.to_array)."""

from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT, cli, synthetic_face
from maskdet import config, images

# Converting starts TensorFlow (in a CLI process, and here for the Keras reference): ~22 s on 2 idle
# cores, ~45 s beside a training job.
pytestmark = pytest.mark.slow

ATOL = 1e-4
SHIPPED = PROJECT / "models" / "maskdet.keras"


def read_pixels(paths) -> np.ndarray:
    """(N, 100, 100, 3) float32 0-255, as maskdet feeds its model."""
    return np.stack([images.to_array(images.open_image(p)) for p in paths]).astype(np.float32)


def drawn_faces(folder: Path, n: int = 6) -> list[Path]:
    """n masked and n unmasked drawn faces, as JPEG and PNG files of a few sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(2 * n):
        img = synthetic_face(masked=i % 2 == 0, seed=500 + i, size=(64, 100, 160)[i % 3])
        path = folder / f"face_{i:02d}.{'png' if i % 5 == 4 else 'jpg'}"
        img.save(path, **({} if path.suffix == ".png" else {"quality": 92}))
        paths.append(path)
    return paths


def onnx_session(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    # The Keras model's own input: any batch of 100x100 RGB float32 (raw 0-255), one probability each
    assert inp.name == "image" and inp.type == "tensor(float)" and inp.shape[1:] == [*config.INPUT_SHAPE], inp
    assert isinstance(inp.shape[0], str), inp.shape  # a free batch dimension
    assert out.name == "p_mask" and out.shape[1:] == [1], out
    return session


def onnx_probs(session, pixels: np.ndarray) -> np.ndarray:
    return session.run(["p_mask"], {"image": pixels})[0].reshape(-1)


def keras_probs(model_path: Path, pixels: np.ndarray) -> np.ndarray:
    """The model's bare output through maskdet's Keras engine (no TFLite, no mirror image)."""
    from maskdet import infer

    return infer.Classifier.load(model_path, lite="off", mirror=False).probs(pixels.astype(np.uint8))


def assert_same_answers(p_onnx, p_keras):
    diff = np.abs(p_onnx - p_keras)
    print(f"max |P_onnx - P_keras| = {diff.max():.2e} over {len(diff)} images")
    assert diff.max() <= ATOL, (p_onnx, p_keras)
    labels = lambda p: np.where(p >= 0.5, config.CLASS_NAMES[0], config.CLASS_NAMES[1])  # noqa: E731
    assert (labels(p_onnx) == labels(p_keras)).all(), (p_onnx, p_keras)


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "x.onnx"
    proc = cli("export", "--model", SHIPPED, "--format", "onnx", "--out", out, check=True)
    assert Path(proc.stdout.strip()) == out and out.stat().st_size > 100_000
    return onnx_session(out)


def test_the_shipped_model_exported_to_onnx_gives_the_keras_probabilities(shipped_onnx, tmp_path):
    pixels = read_pixels(drawn_faces(tmp_path / "faces"))
    p_onnx, p_keras = onnx_probs(shipped_onnx, pixels), keras_probs(SHIPPED, pixels)
    assert_same_answers(p_onnx, p_keras)
    np.testing.assert_allclose(onnx_probs(shipped_onnx, pixels[:1]), p_keras[:1], atol=ATOL)  # a batch of one
    # maskdet's own score follows from the exported model: the face alone for a pretrained backbone, the mean
    # over the face and its mirror image for one from scratch
    from maskdet import infer

    clf = infer.Classifier.load(SHIPPED, lite="off")
    mirrored = np.ascontiguousarray(pixels[:, :, ::-1])
    expected = (p_onnx + onnx_probs(shipped_onnx, mirrored)) / 2 if clf.mirror else p_onnx
    np.testing.assert_allclose(expected, clf.probs(pixels.astype(np.uint8)), atol=ATOL)


@pytest.mark.shared
def test_the_shipped_model_exported_to_onnx_labels_real_crops_as_keras_does(shipped_onnx, facemask_dir):
    # 8 crops of each class, spread over each folder's sorted listing
    faces = []
    for name in config.CLASS_NAMES:
        files = sorted(p for p in (facemask_dir / name).iterdir() if p.suffix.lower() in config.IMAGE_EXTENSIONS)
        faces += files[:: max(1, len(files) // 8)][:8]
    assert len(faces) == 16
    pixels = read_pixels(faces)
    p_onnx, p_keras = onnx_probs(shipped_onnx, pixels), keras_probs(SHIPPED, pixels)
    assert_same_answers(p_onnx, p_keras)
    assert (p_keras >= 0.5).any() and (p_keras < 0.5).any()  # both labels among the answers compared


def test_a_resizing_mobilenetv2_model_exported_to_onnx_gives_the_keras_probabilities(tmp_path):
    import keras

    from maskdet import export

    keras.utils.set_random_seed(7)
    inp = keras.Input(config.INPUT_SHAPE, name="image")
    x = keras.layers.Resizing(128, 128)(inp)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(x)
    base = keras.applications.MobileNetV2(
        input_shape=(128, 128, 3), weights=None, alpha=0.35, include_top=False, pooling="avg"
    )
    x = base(x)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    pixels = read_pixels(drawn_faces(tmp_path / "faces"))
    # BatchNormalization's moving statistics set from one batch (momentum 0), so they are neither the
    # initial 0/1 (which would fold to nothing) nor leave every image with the same saturated answer
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(pixels, training=True)
    assert max(np.abs(np.asarray(layer.moving_mean)).max() for layer in norms) > 0.1
    assert max(np.abs(np.asarray(layer.moving_variance) - 1).max() for layer in norms) > 0.1
    path = tmp_path / "resizing_mobilenetv2.keras"
    model.save(path)

    out = export.export(path, "onnx", tmp_path / "m.onnx")
    session = onnx_session(out)
    import onnx

    assert "Resize" in {node.op_type for node in onnx.load(str(out)).graph.node}
    noise = np.random.default_rng(0).integers(0, 256, (4, *config.INPUT_SHAPE)).astype(np.float32)
    pixels = np.concatenate([pixels, noise])
    p_onnx, p_keras = onnx_probs(session, pixels), keras_probs(path, pixels)
    assert p_keras.std() > 0.01, p_keras  # the images get different answers: the comparison means something
    np.testing.assert_allclose(p_onnx, p_keras, atol=ATOL)
    # labels as Keras gives them, except where Keras itself is within the tolerance of the threshold
    far = np.abs(p_keras - 0.5) > ATOL
    assert ((p_onnx >= 0.5) == (p_keras >= 0.5))[far].all()
    print(f"max |P_onnx - P_keras| = {np.abs(p_onnx - p_keras).max():.2e} over {len(pixels)} images")
