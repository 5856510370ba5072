"""`model.decoder=task_conditioned`: the decoder also sees the task (FiLM on the class codes).

LEO decodes each class code on its own, so a code always decodes to the same classifier, in any
task. Here the decoder is modulated by a task embedding e, the mean of the task's current class
codes (the design document's "task conditioning of the decoder"):

    e      = mean_n z_n                                  # [B, 1, d], the same for every class
    gamma, beta = W_film e                               # [B, 1, d] each (W_film: d -> 2d)
    params_n = W_d ( z_n * (1 + gamma) + beta )          # [B, N, 2F] (mean | raw scale of w_n)

so one class code decodes to different weights in different tasks. e is computed from the codes
themselves and is a mean, so the call stays decoder(latents [B, N, d]) -> [B, N, 2F], the latent
inner loop is unchanged (its gradient also flows through e), and relabelling the classes only
permutes the output rows. W_film starts at zero: at initialisation the decoder is exactly LEO's
linear one (same W_d), and meta-training moves away from it only as far as the task helps. The
orthogonality penalty (lambda2) applies to W_d; both matrices take the L2 penalty (lambda1).
Extra cost: O(N*d + d^2) per task.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leo_lightning.models.decoder import Decoder


def task_embedding(latents: Tensor) -> Tensor:
    """The task's class codes [..., N, d] -> their mean [..., 1, d], invariant to relabelling."""
    return latents.mean(dim=-2, keepdim=True)


class TaskConditionedDecoder(Decoder):
    """LEO's linear decoder W_d, applied to FiLM-modulated codes (see the module docstring)."""

    def __init__(self, latent_dim: int, feature_dim: int):
        super().__init__(latent_dim, feature_dim)
        self.film = nn.Linear(latent_dim, 2 * latent_dim, bias=False)
        nn.init.zeros_(self.film.weight)  # identity modulation: LEO's decoder at init

    def forward(self, latents: Tensor) -> Tensor:  # [B, N, d] -> [B, N, 2F]
        gamma, beta = self.film(task_embedding(latents)).chunk(2, dim=-1)  # [B, 1, d] each
        return self.linear(latents * (1 + gamma) + beta)

    def vjp(self, latents: Tensor, grad: Tensor) -> Tensor:
        """grad [B, N, 2F] -> [B, N, d]: directly through z_n * (1 + gamma), and through the
        task embedding e = mean_n z_n, on which gamma and beta depend (1/N to every code)."""
        gamma, _ = self.film(task_embedding(latents)).chunk(2, dim=-1)  # [B, 1, d]
        grad_modulated = grad @ self.linear.weight  # [B, N, d]
        grad_gamma = (grad_modulated * latents).sum(dim=-2, keepdim=True)  # [B, 1, d]
        grad_beta = grad_modulated.sum(dim=-2, keepdim=True)  # [B, 1, d]
        grad_embedding = torch.cat([grad_gamma, grad_beta], dim=-1) @ self.film.weight  # [B, 1, d]
        return grad_modulated * (1 + gamma) + grad_embedding / latents.shape[-2]

    def regularized_weights(self) -> list[Tensor]:
        return [self.linear.weight, self.film.weight]
