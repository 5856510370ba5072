"""LEO's decoder: a latent class code -> the distribution of that class's classifier weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Decoder(nn.Module):
    """One bias-free linear map d -> 2F, applied to each class code separately, so one model
    serves any number of classes."""

    def __init__(self, latent_dim: int, feature_dim: int):
        super().__init__()
        self.linear = nn.Linear(latent_dim, 2 * feature_dim, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)

    def forward(self, latents: Tensor) -> Tensor:  # [B, N, d] -> [B, N, 2F]
        return self.linear(latents)

    def vjp(self, latents: Tensor, grad: Tensor) -> Tensor:
        """grad [B, N, 2F] w.r.t. forward(latents) -> the gradient w.r.t. latents [B, N, d], as
        differentiable tensor ops: the latent inner loop writes its gradient in closed form, so
        meta-training differentiates it once instead of twice (models/leo.py)."""
        return grad @ self.linear.weight

    def regularized_weights(self) -> list[Tensor]:
        """The weight matrices that take LEO's L2 penalty (lambda1)."""
        return [self.linear.weight]

    def orthogonality_penalty(self) -> Tensor:
        """Mean squared deviation from identity of the d x d cosine matrix of the decoder's rows.

        The original stores the decoder as W_d of shape d x 2F (one row per latent dimension);
        nn.Linear stores its transpose, hence `.T`. Taking the 2F x 2F matrix instead is a known
        re-implementation mistake.
        """
        rows = F.normalize(self.linear.weight.T, dim=1)  # [d, 2F]
        cosine = rows @ rows.T  # [d, d]
        eye = torch.eye(cosine.shape[0], device=cosine.device, dtype=cosine.dtype)
        return (cosine - eye).square().mean()
