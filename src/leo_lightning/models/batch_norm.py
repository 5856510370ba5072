"""BatchNorm whose statistics come from a task's support set only.

A network adapted on one support set has no running statistics, and normalising the queries
with statistics over the queries themselves makes every prediction depend on the other queries
(transductive). `SupportBatchNorm` normalises a batch [support; query] with the statistics of
its first `n_reference` examples: the support examples are normalised exactly as while fitting
(where the batch is the support set alone), and each query independently of the others.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class SupportBatchNorm(nn.Module):
    """Per-channel normalisation with the (biased) statistics of the first `n_reference`
    examples, then BatchNorm's affine map. `n_reference=None`: all examples (while fitting)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.n_reference: int | None = None

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:  # [n, C, ...] -> [n, C, ...]
        reference = x.float() if self.n_reference is None else x[: self.n_reference].float()
        dims = [0, *range(2, x.ndim)]  # every dimension but the channel
        mean = reference.mean(dim=dims, keepdim=True)
        var = reference.var(dim=dims, unbiased=False, keepdim=True)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        out = (x.float() - mean) * torch.rsqrt(var + self.eps)
        return (out * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


def with_support_batch_norm(network: nn.Module) -> nn.Module:
    """A copy of `network` with every BatchNorm layer replaced by a `SupportBatchNorm` carrying
    the same affine weights (the running statistics are dropped)."""
    network = copy.deepcopy(network)
    _replace(network)
    return network


def _replace(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            norm = SupportBatchNorm(child.num_features, child.eps)
            if child.affine:
                norm.weight.data.copy_(child.weight.data)
                norm.bias.data.copy_(child.bias.data)
            setattr(module, name, norm)
        else:
            _replace(child)


def use_support_statistics(network: nn.Module, n_reference: int | None) -> None:
    """Make every `SupportBatchNorm` of `network` take its statistics from the first
    `n_reference` examples of each batch (None: from all of them)."""
    for module in network.modules():
        if isinstance(module, SupportBatchNorm):
            module.n_reference = n_reference


def has_batch_norm(network: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm | SupportBatchNorm) for m in network.modules())


@contextlib.contextmanager
def batch_statistics(network: nn.Module):
    """For the duration, every BatchNorm layer of `network` normalises each batch with that
    batch's own statistics, in evaluation mode too, and leaves no trace: its running statistics
    are set aside (as in a layer that tracks none) and put back afterwards, untouched."""
    norms = [m for m in network.modules() if isinstance(m, _BatchNorm)]
    saved = [(m.running_mean, m.running_var, m.num_batches_tracked) for m in norms]
    for m in norms:
        m.running_mean = m.running_var = m.num_batches_tracked = None
    try:
        yield
    finally:
        for m, (mean, var, count) in zip(norms, saved):
            m.running_mean, m.running_var, m.num_batches_tracked = mean, var, count
