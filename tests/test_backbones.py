"""Pretrained backbones: the weight reader, the Keras ports, and training on them."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, make_dataset
from maskdet import backbones, cards, config, images, infer, model as model_lib, torch_weights

# ImageNet-1k classes a masked face falls in: gas mask / respirator, oxygen mask, ski mask
MASK_CLASSES = {570, 691, 796}


@pytest.mark.parametrize(
    "name, n_tensors, n_params", [("mobilenet_v2", 262, 3_538_984), ("efficientnet_lite0", 247, 4_694_024)]
)
def test_the_weight_files_hold_every_imagenet_tensor(name, n_tensors, n_params):
    sd = backbones.state_dict(name)
    tensors = {k: v for k, v in sd.items() if "num_batches_tracked" not in k}
    assert len(tensors) == n_tensors and sum(v.size for v in tensors.values()) == n_params
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in tensors.values())
    # the 1000-class ImageNet head is the last layer, as in the original
    assert list(tensors.values())[-2].shape == (1000, 1280)


def test_the_reader_refuses_what_is_not_a_plain_state_dict(tmp_path):
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(torch_weights.WeightFileError, match="no magic number"):
        torch_weights.read_state_dict(tmp_path / "text.pth")

    class Evil:  # a pickle that would run a command on load
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "evil.pth", "wb") as f:
        for obj in (torch_weights.MAGIC_NUMBER, 1001, {"little_endian": True}, Evil()):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(torch_weights.WeightFileError, match=r"refused to unpickle (__builtin__|builtins)\.print"):
        torch_weights.read_state_dict(tmp_path / "evil.pth")


@pytest.mark.shared
@pytest.mark.parametrize("name", list(backbones.BACKBONES))
def test_the_ported_networks_see_masks_as_imagenet_does(name, facemask_dir):
    """The Keras port is the original network, not just its tensors: on real faces its ImageNet head puts
    masked faces in the mask classes often and bare faces never (a wrong padding, transposition or
    normalisation scrambles this)."""
    net = backbones.build(name, 224, imagenet_head=True)

    def top1(cls):
        paths = sorted((facemask_dir / cls).iterdir())[::170][:32]
        x = np.stack([np.asarray(images.open_image(p).resize((224, 224)), np.float32) for p in paths])
        return np.asarray(net(x, training=False)).argmax(1)

    masked, bare = top1("with_mask"), top1("without_mask")
    assert np.isin(masked, list(MASK_CLASSES)).mean() >= 0.2
    assert not np.isin(bare, list(MASK_CLASSES)).any()


def test_each_backbone_makes_a_classifier_of_raw_crops_that_loads_safely(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (2, *config.INPUT_SHAPE)).astype(np.float32)
    for name in model_lib.BACKBONE_CHOICES:
        m = model_lib.make_model(name, input_size=96, alpha=0.25)
        assert m.input_shape == (None, *config.INPUT_SHAPE) and m.output_shape == (None, 1)
        m.save(tmp_path / f"{name}.keras")
        loaded = infer.load_model(tmp_path / f"{name}.keras")  # safe_mode: no code in the file
        np.testing.assert_allclose(loaded(x, training=False), m(x, training=False), atol=1e-5)
    model_lib.set_backbone_trainable(m, False)
    assert len(m.trainable_weights) == 2  # the head's kernel and bias


@pytest.mark.slow
def test_a_pretrained_run_trains_the_head_first_then_fine_tunes(tmp_path):
    dataset = make_dataset(tmp_path / "faces", per_class=24)
    run_dir = Path(
        cli(
            "train",
            "--data",
            dataset,
            "--backbone",
            "mobilenet_v2",
            "--input-size",
            96,
            "--epochs",
            2,
            "--head-epochs",
            1,
            "--batch-size",
            16,
            "--runs-dir",
            tmp_path / "runs",
            check=True,
        )
        .stdout.strip()
        .splitlines()[0]
    )
    imagenet = backbones.state_dict("mobilenet_v2")["features.0.0.weight"].transpose(2, 3, 1, 0)
    head_only = infer.load_model(run_dir / "head_model.keras").get_layer("backbone").get_layer("stem")
    final = infer.load_model(run_dir / "model.keras").get_layer("backbone").get_layer("stem")
    np.testing.assert_array_equal(head_only.get_weights()[0], imagenet)  # frozen while the head learned
    assert not np.allclose(final.get_weights()[0], imagenet)  # then fine-tuned
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1, 2]
    card = cards.make_card(run_dir)
    assert card["backbone"] == "mobilenet_v2" and card["weights_licence"].startswith("BSD-3-Clause")


@pytest.mark.slow
@pytest.mark.shared
def test_a_short_pretrained_run_is_useful(facemask_dir, tmp_path):
    """One epoch on 2,000 real images (the Train page's quick try) gives a model that tells the classes
    apart, not a constant one."""
    run_dir = Path(
        cli(
            "train", "--data", facemask_dir, "--epochs", 1, "--limit", 2000, "--runs-dir", tmp_path / "runs", check=True
        )
        .stdout.strip()
        .splitlines()[0]
    )
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["balanced_accuracy"] >= 0.95, evaluation["confusion_matrix"]
