"""The pretraining settings, `pretrain.<key>`, each declared once: its default and what it does.

The `Pretrainer` takes them by name and fills the rest from here; the config schema is this
class (config/schemas.py); `leo-pretrain --help` lists them. The defaults follow the plain
supervised pretraining of RFS (Tian et al., 2020) and LEO's own: SGD with momentum and weight
decay, a cosine rate over `trainer.max_steps`, label smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from leo_lightning.declared import Declared, setting
from leo_lightning.models.precision import AUTO

# OmegaConf needs typing.Optional, not `X | None`, in dataclass annotations on Python 3.10.
# ruff: noqa: UP045


@dataclass
class PretrainSettings(Declared):
    PREFIX = "pretrain"

    batch_size: int = setting(128, "examples per step, drawn from every training class")
    lr: float = setting(0.05, "SGD learning rate, the peak of the cosine schedule")
    momentum: float = setting(0.9, "SGD (Nesterov) momentum")
    weight_decay: float = setting(5e-4, "L2 weight decay of SGD")
    warmup_steps: int = setting(0, "first steps with a linear ramp up to pretrain.lr")
    label_smoothing: float = setting(0.1, "cross-entropy label smoothing, in [0, 1)")
    rotation_weight: float = setting(
        0.0,
        "weight of Gidaris et al.'s (2019) auxiliary loss: a second head predicts which of 4 "
        "rotations (0/90/180/270 degrees) each image was given; 0: off (each step is then 4x "
        "cheaper)",
    )
    channels_last: bool = setting(True, "backbone weights and input in channels-last layout")
    backbone_autocast: Optional[str] = setting(
        AUTO, "the backbone's autocast dtype: auto (measured per machine), bf16, fp16 or null"
    )
