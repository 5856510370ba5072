"""What every network in the package does to an example before its backbone, in one place:
images are stored as uint8 and become floats in [0, 1]; pre-computed features are floats."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def as_float(x: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1] (a new tensor); anything else -> float32."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def feature_dim(backbone: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The width F of the backbone's output for one example of `input_shape`, found by running
    it on two zero examples in eval mode (BatchNorm untouched)."""
    was_training = backbone.training
    backbone.eval()
    out = backbone(torch.zeros(2, *input_shape))
    backbone.train(was_training)
    return int(out.shape[-1])
