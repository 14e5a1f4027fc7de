"""The classifier: a MobileNet trained from scratch, preprocessing inside the model."""
from . import config


def make_model(alpha: float = config.DEFAULT_ALPHA, dropout: float = 0.2):
    """MobileNet (random init, width `alpha`) on raw 0-255 RGB input -> P(with mask).

    Rescaling lives inside the model so training and serving cannot preprocess differently.
    """
    import keras

    inputs = keras.Input(shape=config.INPUT_SHAPE, name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    backbone = keras.applications.MobileNet(
        input_shape=config.INPUT_SHAPE, alpha=alpha, include_top=False, weights=None, pooling="avg")
    x = backbone(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_mask")(x)
    return keras.Model(inputs, outputs, name=f"maskdet_mobilenet_a{alpha:g}")


def compile_model(model, learning_rate: float = config.DEFAULT_LEARNING_RATE, steps: int | None = None):
    """Adam with cosine decay over `steps` (when known), binary cross-entropy, accuracy."""
    import keras

    lr = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02) if steps else learning_rate
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")])
    return model
