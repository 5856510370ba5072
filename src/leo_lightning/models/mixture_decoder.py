"""`model.decoder=mixture`: E linear decoders mixed by a gate on the task embedding.

One linear decoder serves every task in LEO; the design document proposes a mixture of decoders
for different kinds of tasks. E decoders W_e (each d -> 2F, as LEO's) are mixed per task by a
softmax gate on the task embedding e, the mean of the task's class codes:

    e     = mean_n z_n                                   # [B, 1, d]
    g     = softmax(W_gate e)                            # [B, E], sums to 1 per task
    W_b   = sum_e g_be W_e                               # [B, 2F, d], the task's decoder
    params_n = W_b z_n                                   # [B, N, 2F] (mean | raw scale of w_n)

Mixing the matrices first and decoding once costs O(E*F*d) per task instead of decoding every
code E times (O(N*E*F*d)); the result is the same, sum_e g_e (W_e z_n). As with the
task-conditioned decoder, e comes from the codes themselves, so the call stays
decoder(latents [B, N, d]) -> [B, N, 2F], the latent inner loop is unchanged, and relabelling
the classes only permutes the output rows.

Each W_e has its own orthogonality penalty; the penalty reported is the mean over the experts
(so lambda2 means what it means for one decoder). W_gate starts at zero: every expert starts
with weight 1/E and receives a gradient, and the gate learns to tell tasks apart.

Init: the uniform average of E independent Glorot matrices has 1/sqrt(E) of their scale, so a
mixture initialised like LEO's decoder started smaller than it, and an ablation of "the mixture"
measured its initialisation too. Each expert is Glorot-initialised and scaled by sqrt(E): the
mixed decoder W_b then starts at the scale of LEO's single decoder, whatever E (E = 1 is LEO's
decoder itself; the config asks for E >= 2, since E = 1 is model.decoder=linear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leo_lightning.models.task_decoder import task_embedding


class MixtureDecoder(nn.Module):
    def __init__(self, latent_dim: int, feature_dim: int, experts: int):
        super().__init__()
        if experts < 1:
            raise ValueError(f"model.decoder_experts={experts}: must be >= 1")
        # Stored as nn.Linear stores one decoder: [E, 2F, d], out x in.
        self.weight = nn.Parameter(torch.empty(experts, 2 * feature_dim, latent_dim))
        with torch.no_grad():
            for expert in self.weight:
                nn.init.xavier_uniform_(expert)
            self.weight.mul_(experts**0.5)  # the average of the E starts at one decoder's scale
        self.gate = nn.Linear(latent_dim, experts, bias=False)
        nn.init.zeros_(self.gate.weight)  # uniform gate at init

    @property
    def experts(self) -> int:
        return self.weight.shape[0]

    def gates(self, latents: Tensor) -> Tensor:
        """Class codes [B, N, d] -> each task's expert weights [B, E]."""
        return torch.softmax(self.gate(task_embedding(latents)).squeeze(-2), dim=-1)

    def forward(self, latents: Tensor) -> Tensor:  # [B, N, d] -> [B, N, 2F]
        mixed = torch.einsum("be,eod->bod", self.gates(latents), self.weight)  # [B, 2F, d]
        return latents @ mixed.transpose(1, 2)

    def vjp(self, latents: Tensor, grad: Tensor) -> Tensor:
        """grad [B, N, 2F] -> [B, N, d]: through the task's mixed decoder W_b, and through the
        gates g = softmax(W_gate e), whose task embedding e = mean_n z_n gives 1/N to each code."""
        gates = self.gates(latents)  # [B, E]
        mixed = torch.einsum("be,eod->bod", gates, self.weight)  # [B, 2F, d]
        grad_mixed = grad.transpose(1, 2) @ latents  # [B, 2F, d]
        grad_gates = torch.einsum("bod,eod->be", grad_mixed, self.weight)  # [B, E]
        centred = grad_gates - (gates * grad_gates).sum(dim=-1, keepdim=True)
        grad_embedding = (gates * centred) @ self.gate.weight  # softmax, then W_gate: [B, d]
        return grad @ mixed + grad_embedding.unsqueeze(-2) / latents.shape[-2]

    def orthogonality_penalty(self) -> Tensor:
        """LEO's penalty for each expert (the d x d cosine matrix of its rows in W_e stored as
        d x 2F, see Decoder.orthogonality_penalty), averaged over the experts."""
        rows = F.normalize(self.weight.transpose(1, 2), dim=-1)  # [E, d, 2F]
        cosine = rows @ rows.transpose(1, 2)  # [E, d, d]
        eye = torch.eye(cosine.shape[-1], device=cosine.device, dtype=cosine.dtype)
        return (cosine - eye).square().mean()  # equal-sized experts: the mean of their means

    def regularized_weights(self) -> list[Tensor]:
        return [self.weight, self.gate.weight]
