"""LEO's feature dropout, with masks drawn four to a random number.

LEO drops out the features at every use: before the encoder, and before the classifier at each
of the inner loop's latent and fine-tuning steps and on the queries, each time with a fresh mask.
On LEO's own workload (12 tasks of 640-d features a step, 10 inner steps) that is about a million
mask values a step. torch's CPU dropout draws one 32-bit Mersenne-Twister number per value,
serially, and it took a fifth of the feature-space meta-training step. Here each 64-bit draw is
split into four 16-bit uniform integers and compared with a threshold: the same Bernoulli keep
mask at a quarter of the draws (benchmarks/feature_throughput.py measures the step). The drop
rate is rounded to a multiple of 1/65536, at most 7.7e-6 away from the one asked for.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

LEVELS = 1 << 16  # a 16-bit draw takes this many values


class FeatureDropout(nn.Module):
    """Zeroes each value with probability p and scales the rest by 1 / (1 - p), in training
    only, like nn.Dropout; `masks` draws the scaled keep masks of several uses at once."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"model.dropout={p}: must be in [0, 1)")
        self.p = p

    @property
    def active(self) -> bool:
        return self.training and self.p > 0

    def masks(self, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
        """Scaled keep masks of `shape` in `like`'s dtype and device (0 or 1 / (1 - p)); None
        when nothing is dropped (evaluation, p = 0)."""
        if not self.active:
            return None
        count = math.prod(shape)
        words = torch.empty((count + 3) // 4, dtype=torch.int64, device=like.device)
        words.random_(-(2**63), 2**63 - 1)  # every bit uniform
        draws = words.view(torch.int16)[:count].view(shape)  # uniform over -32768..32767
        threshold = round(self.p * LEVELS) - LEVELS // 2  # P(draw < threshold) = p (rounded)
        keep = (draws >= threshold).to(like.dtype)
        return keep.mul_(1.0 / (1.0 - self.p))

    def forward(self, x: Tensor) -> Tensor:
        mask = self.masks(tuple(x.shape), x)
        return x if mask is None else x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
