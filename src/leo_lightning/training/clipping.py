"""The original's per-tensor gradient clipping: each value to +-v, then each tensor's norm to c.

Global-norm clipping is a known re-implementation mistake: one exploding tensor would scale
every other tensor's update down with it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def clip_per_tensor_(grads: Iterable[Tensor], value: float, max_norm: float) -> Tensor:
    """Clip in place; returns a 0-dim bool tensor: True if every gradient was finite before
    clipping. Finiteness is tested first, on the raw values: clamping would turn +-inf into
    +-value and let a poisoned update through."""
    grads = list(grads)
    if not grads:
        return torch.tensor(True)
    finite = all_finite(grads)
    torch._foreach_clamp_min_(grads, -value)
    torch._foreach_clamp_max_(grads, value)
    norms = torch._foreach_norm(grads)
    scales = [(max_norm / (n + 1e-12)).clamp(max=1.0) for n in norms]
    torch._foreach_mul_(grads, scales)
    return finite


def all_finite(tensors: Iterable[Tensor]) -> Tensor:
    """A 0-dim bool tensor: True if no value is inf or NaN, computed without a host sync.

    This is the fused check torch.amp's GradScaler runs at every step (its multiplication by 1.0
    changes no value). A norm would not do: the 2-norm overflows to inf for finite values from
    about 1e19 on, and the max-abs norm is tens of times slower on CPU."""
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return torch.tensor(True)
    found = torch.zeros(1, device=tensors[0].device)
    one = torch.ones(1, device=tensors[0].device)
    torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, one)
    return found[0] == 0
