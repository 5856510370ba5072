"""Accuracy over episodes with its 95% confidence interval, reduced exactly across processes."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class EpisodeAccuracy(Metric):
    """Mean per-episode accuracy and 1.96 * sd / sqrt(n), sd with Bessel's correction.

    Keeps sums rather than the list of accuracies, so DDP reduction is a sum of three numbers.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("total", "total_sq", "count"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, per_episode_accuracy: Tensor) -> None:  # [B]
        acc = per_episode_accuracy.detach().double()
        self.total += acc.sum()
        self.total_sq += acc.square().sum()
        self.count += acc.numel()

    def compute(self) -> tuple[Tensor, Tensor, Tensor]:
        """Mean accuracy, its 95% half-width and the number of episodes, over all processes
        (the states are reduced only inside compute, so read the count from here)."""
        n = self.count
        mean = self.total / n
        var = ((self.total_sq - n * mean.square()) / (n - 1)).clamp_min(0) if n > 1 else n * 0
        return mean.float(), (1.96 * var.sqrt() / n.sqrt()).float(), n.float()


def episode_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """[B, M, N] logits, [B, M] labels -> [B] accuracy of each episode."""
    return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)
