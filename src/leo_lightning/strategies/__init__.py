"""Optimization strategies: where a task's latent codes and classifier weights come from.

A strategy of your own subclasses `Strategy` (or `LatentStrategy`) and declares a
`StrategySpec`; with a YAML file that names it (`strategy: {_target_: my_module.MyStrategy}`)
in a config folder of yours, `strategy=<file name>` trains it (README, "Where to change what").
"""

from leo_lightning.strategies.amortized import Amortized
from leo_lightning.strategies.amortized_pure import AmortizedPure
from leo_lightning.strategies.base import LatentStrategy, ModelDims, Strategy, TaskOutput
from leo_lightning.strategies.logistic_regression import LogisticRegression
from leo_lightning.strategies.maml import MAML
from leo_lightning.strategies.meta_sgd import MetaSGD
from leo_lightning.strategies.nearest_centroid import NearestCentroid
from leo_lightning.strategies.per_task import PerTask
from leo_lightning.strategies.protonet import ProtoNet
from leo_lightning.strategies.spec import Setting, Steps, StrategySpec
from leo_lightning.strategies.universal import Universal

__all__ = [
    "MAML",
    "Amortized",
    "AmortizedPure",
    "LatentStrategy",
    "LogisticRegression",
    "MetaSGD",
    "ModelDims",
    "NearestCentroid",
    "PerTask",
    "ProtoNet",
    "Setting",
    "Steps",
    "Strategy",
    "StrategySpec",
    "TaskOutput",
    "Universal",
]
