"""The support loss of the inner loops and its gradient w.r.t. the classifier weights, in
closed form.

L_support = sum_b sum_m omega_bm * CE(x_bm W_b^T, y_bm), the cross-entropy of LEO's bias-free
dot-product classifier summed over the support examples (each weighted by `shot_weights`, all 1
with equal shots) and over the tasks, which are independent, so each task's state still receives
its own gradient. Its gradient w.r.t. the weights is
    grad_W_b = G_b^T x_b,   G_b = omega_b * (softmax(x_b W_b^T) - onehot(y_b))   # [B, N, F]
Written as tensor ops, an inner step is an ordinary differentiable function of its inputs:
meta-training differentiates the steps (second order) in its one backward pass, instead of
asking autograd for each step's gradient with create_graph and then differentiating autograd's
own backward formulas (the cross-entropy's double backward) again; and an evaluation needs no
graph at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from leo_lightning.models.shots import shot_weights


@dataclass(frozen=True)
class SupportTargets:
    """A support set's labels as the closed form uses them, computed once per inner loop."""

    weighted_onehot: Tensor  # omega * onehot(y) [B, M, N]
    example_weights: Tensor  # omega [B, M, 1]
    mean_shots: float  # K (the mean shot count with unequal shots)

    @classmethod
    def of(cls, labels: Tensor, n_way: int, dtype: torch.dtype) -> SupportTargets:
        """labels [B, M] in 0..N-1."""
        weights = shot_weights(labels, n_way).to(dtype).unsqueeze(-1)  # [B, M, 1]
        onehot = F.one_hot(labels, n_way).to(dtype)  # [B, M, N]
        return cls(onehot * weights, weights, labels.shape[1] / n_way)


def support_gradient(
    features: Tensor, targets: SupportTargets, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """features [B, M, F] (already dropped out), weights [B, N, F] -> L_support summed over the
    tasks (detached, for the curves) and grad_W L_support [B, N, F] (see the module docstring)."""
    log_probs = (features @ weights.transpose(1, 2)).log_softmax(dim=-1)  # [B, M, N]
    residual = log_probs.exp() * targets.example_weights - targets.weighted_onehot  # G [B, M, N]
    loss = -(log_probs.detach() * targets.weighted_onehot).sum()
    return loss, residual.transpose(1, 2) @ features
