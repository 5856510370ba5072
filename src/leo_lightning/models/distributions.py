"""LEO's diagonal Gaussians: how a (mean, raw scale) pair becomes a sample and a KL term.

One place for the formula, because re-implementations that got it wrong (raw output used as
the standard deviation, sampling at evaluation) lost many points of accuracy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MIN_STD = 1e-10


def split_gaussian(params: Tensor, std_offset: float = 0.0) -> tuple[Tensor, Tensor]:
    """[..., 2D] -> mean [..., D], std [..., D] with std = max(exp(u) - 1 + offset, 1e-10)."""
    mean, raw_scale = params.chunk(2, dim=-1)
    std = (raw_scale.exp() - 1.0 + std_offset).clamp_min(MIN_STD)
    return mean, std


def sample_gaussian(params: Tensor, sample: bool, std_offset: float = 0.0) -> tuple[Tensor, Tensor]:
    """A reparameterised sample and the one-sample KL(q || N(0, I)), averaged over elements.

    Without sampling (evaluation) the mean is returned and the KL is zero, as in the original.
    """
    mean, std = split_gaussian(params, std_offset)
    if not sample:
        return mean, mean.new_zeros(())
    eps = torch.randn_like(mean)
    z = mean + std * eps
    # log q(z) - log p(z) with (z - mean) / std = eps; the log(2 pi) terms cancel.
    kl = (0.5 * z.square() - 0.5 * eps.square() - std.log()).mean()
    return z, kl


def draw_gaussian(
    params: Tensor, sample: bool, std_offset: float = 0.0, noise: Tensor | None = None
) -> Tensor:
    """A reparameterised sample (the mean without sampling), without a KL: for the decoded
    classifier weights, whose KL the meta-loss does not use (decode runs once per inner step,
    and computing it there was dead work). Draws the same numbers as sample_gaussian, unless
    `noise` (the standard normal eps [..., D]) is given."""
    mean, std = split_gaussian(params, std_offset)
    if not sample:
        return mean
    return mean + std * (torch.randn_like(mean) if noise is None else noise)


def draw_gaussian_vjp(
    params: Tensor, noise: Tensor | None, std_offset: float, grad: Tensor
) -> Tensor:
    """The gradient w.r.t. params [..., 2D] of a loss whose gradient w.r.t. the sample
    draw_gaussian(params, noise is not None, std_offset, noise) is `grad` [..., D].

    sample = mean + max(exp(u) - 1 + offset, 1e-10) * eps, so d/dmean = 1 and
    d/du = eps * exp(u) where the floor is not taken (torch's clamp_min passes the gradient at
    the floor itself too); without noise the mean was drawn and u gets none. The inner loop
    writes its gradient in closed form with this (models/leo.py)."""
    if noise is None:
        return torch.cat([grad, torch.zeros_like(grad)], dim=-1)
    scale = params.chunk(2, dim=-1)[1].exp()
    passed = (scale - 1.0 + std_offset) >= MIN_STD
    return torch.cat([grad, grad * noise * scale * passed], dim=-1)


def weight_std_offset(feature_dim: int, n_way: int) -> float:
    """The Glorot-sized floor the original adds to the classifier weights' std."""
    return math.sqrt(2.0 / (feature_dim + n_way))


def kl_to_standard_normal(mean: Tensor, std: Tensor) -> Tensor:
    """Closed-form KL(N(mean, std^2) || N(0, 1)) per element."""
    return 0.5 * (mean.square() + std.square() - 1.0) - std.log()
