"""Optimization strategies: where a task's latent codes and classifier weights come from."""

from leo_lightning.strategies.amortized import Amortized
from leo_lightning.strategies.base import LatentStrategy, ModelDims, Strategy, TaskOutput
from leo_lightning.strategies.per_task import PerTask
from leo_lightning.strategies.universal import Universal

__all__ = [
    "Amortized",
    "LatentStrategy",
    "ModelDims",
    "PerTask",
    "Strategy",
    "TaskOutput",
    "Universal",
]
