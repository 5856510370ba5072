"""The original's per-tensor gradient clipping: each value to +-v, then each tensor's norm to c.

Global-norm clipping is a known re-implementation mistake: one exploding tensor would scale
every other tensor's update down with it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def clip_per_tensor_(grads: Iterable[Tensor], value: float, max_norm: float) -> Tensor:
    """Clip in place; returns a 0-dim bool tensor: True if every gradient is finite."""
    grads = list(grads)
    if not grads:
        return torch.tensor(True)
    torch._foreach_clamp_min_(grads, -value)
    torch._foreach_clamp_max_(grads, value)
    norms = torch._foreach_norm(grads)
    scales = [(max_norm / (n + 1e-12)).clamp(max=1.0) for n in norms]
    torch._foreach_mul_(grads, scales)
    return torch.stack(norms).isfinite().all()
