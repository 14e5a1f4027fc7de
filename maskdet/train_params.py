"""A training run's settings and their defaults, in one place: the command line, the Train page, runs.create
and the training itself all go through TrainParams. params.json holds them (dataclasses.asdict, beside the data
folder), and so does a promoted model's card under "parameters"."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import backbones, config, model as model_lib


@dataclass(frozen=True)
class TrainParams:
    """What a run trains and how; a missing learning_rate is the backbone's own default."""

    backbone: str = config.DEFAULT_BACKBONE
    input_size: int = config.DEFAULT_INPUT_SIZE  # a pretrained backbone sees each crop resized to this size
    epochs: int = config.DEFAULT_EPOCHS
    head_epochs: int = config.DEFAULT_HEAD_EPOCHS
    batch_size: int = config.DEFAULT_BATCH_SIZE
    alpha: float = config.DEFAULT_ALPHA
    learning_rate: float | None = None
    fine_tune_learning_rate: float = config.DEFAULT_FINE_TUNE_LEARNING_RATE
    val_fraction: float = config.DEFAULT_VAL_FRACTION
    limit: int | None = None  # train on a class-balanced sample of about this many images
    augment: bool = True
    seed: int = 0

    def __post_init__(self):
        if not self.learning_rate:
            object.__setattr__(self, "learning_rate", model_lib.default_learning_rate(self.backbone))

    @classmethod
    def from_record(cls, record: dict) -> TrainParams:
        """The settings a params.json holds: keys it does not know (the data folder, older or newer settings)
        are skipped and missing ones take their defaults; a run from before backbones were a choice trained
        the from-scratch MobileNet."""
        known = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in record.items() if k in known}
        given.setdefault("backbone", backbones.SCRATCH)
        return cls(**given)

    def record(self) -> dict:
        """As params.json and the model card write them."""
        return dataclasses.asdict(self)
