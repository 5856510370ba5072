"""leo-lightning: Latent Embedding Optimization on PyTorch Lightning and Hydra.

From Python: `train(overrides)` and `evaluate(ckpt_path)` run what the `leo-train` and
`leo-eval` commands run; `LEO` exposes a model's adaptation steps by name (README, "Python API").
A user's mistake raises ConfigError, CheckpointError or DataError, with a message that names
the key, file or value.
"""

from leo_lightning.api.leo import LEO
from leo_lightning.api.runs import evaluate, train
from leo_lightning.errors import CheckpointError, ConfigError, DataError, DataNotFoundError
from leo_lightning.training.module import LEOModule
from leo_lightning.version import __version__

__all__ = [
    "LEO",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataNotFoundError",
    "LEOModule",
    "evaluate",
    "__version__",
    "train",
]
