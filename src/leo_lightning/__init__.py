"""leo-lightning: Latent Embedding Optimization on PyTorch Lightning and Hydra.

From Python: `train(overrides)` and `evaluate(ckpt_path)` run what the `leo-train` and
`leo-eval` commands run; `LEO` exposes a model's adaptation steps by name (README, "Python API").
"""

from leo_lightning.facade import LEO
from leo_lightning.module import LEOModule
from leo_lightning.runs import evaluate, train

__all__ = ["LEO", "LEOModule", "evaluate", "train"]
__version__ = "0.1.0"
