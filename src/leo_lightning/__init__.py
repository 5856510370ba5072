"""leo-lightning: Latent Embedding Optimization on PyTorch Lightning and Hydra."""

from leo_lightning.module import LEOModule

__all__ = ["LEOModule"]
__version__ = "0.1.0"
