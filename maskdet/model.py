"""The classifier: a backbone (ImageNet-pretrained, or the seed's MobileNet from scratch) and one sigmoid,
with resizing and preprocessing inside the model so training and serving cannot drift apart."""

from . import backbones, config

BACKBONE_CHOICES = (*backbones.BACKBONES, backbones.SCRATCH)
BACKBONE_LAYER = "backbone"  # the nested model frozen while the head learns


def make_model(
    backbone: str = config.DEFAULT_BACKBONE,
    input_size: int = config.DEFAULT_INPUT_SIZE,
    alpha: float = config.DEFAULT_ALPHA,
    dropout: float = 0.2,
):
    """Raw 0-255 RGB face crops (config.INPUT_SHAPE) -> P(with mask).

    A pretrained backbone sees the crop resized to input_size x input_size and normalised as on ImageNet;
    the from-scratch MobileNet (width `alpha`) sees it at its own size, scaled to [-1, 1].
    """
    import keras

    inputs = keras.Input(shape=config.INPUT_SHAPE, name="image")
    x = inputs
    if backbone == backbones.SCRATCH:
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)
        net = keras.applications.MobileNet(
            input_shape=config.INPUT_SHAPE,
            alpha=alpha,
            include_top=False,
            weights=None,
            pooling="avg",
            name=BACKBONE_LAYER,
        )
        name = f"maskdet_mobilenet_a{alpha:g}"
    else:
        if input_size != config.IMAGE_SIZE[0]:
            x = keras.layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(x)
        net = backbones.build(backbone, input_size)
        net.name = BACKBONE_LAYER
        name = f"maskdet_{backbone}_{input_size}"
    # training=False keeps a pretrained network's BatchNorm statistics fixed, also once it is unfrozen
    # for fine-tuning (Keras' transfer-learning guide): a few thousand faces must not overwrite them.
    x = net(x, training=False) if backbone != backbones.SCRATCH else net(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_mask")(x)
    return keras.Model(inputs, outputs, name=name)


def default_learning_rate(backbone: str) -> float:
    """The first phase's rate: a pretrained backbone's new head, or the whole from-scratch network."""
    return config.DEFAULT_LEARNING_RATE if backbone == backbones.SCRATCH else config.DEFAULT_HEAD_LEARNING_RATE


def scored_with_mirror(model) -> bool:
    """Whether a model's faces are scored as the mean of the face and its mirror image. It paid for the
    MobileNet from scratch (validation 98.58% -> 98.69%, other photos' faces 88.6% -> 90.4% balanced) but
    not for a fine-tuned pretrained backbone (one face of 553 either way, docs/models.md), where it would
    double the time a face takes. The model's name says which it is (make_model names it)."""
    return not model.name.startswith(tuple(f"maskdet_{name}_" for name in backbones.BACKBONES))


def set_backbone_trainable(model, trainable: bool) -> None:
    """Freeze or unfreeze the backbone (recompile afterwards)."""
    model.get_layer(BACKBONE_LAYER).trainable = trainable


def compile_model(model, learning_rate: float = config.DEFAULT_LEARNING_RATE, steps: int | None = None):
    """Adam with cosine decay over `steps` (when known), binary cross-entropy, accuracy."""
    import keras

    lr = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02) if steps else learning_rate
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model
