"""`model.relation=attention`: each support code attends over the task's codes.

LEO's relation network averages an MLP over every pair (h_i, h_j) with the same weight 1/M for
every partner j. Attention lets each example choose its partners instead (the design document's
"attention, to weight the task's examples differently"): a class's examples are the queries,
every example code of the task (its own included, as the self-pairs are) a key and a value.
With M = N*K support codes h [B, M, d], width w = 2d and H heads of w/H:

    q_i = W_q h_i,  k_j = W_k h_j,  v_j = W_v h_j                      # [B, M, w] each
    a_ij = softmax_j( q_i . k_j / sqrt(w/H) + log pi_j )                 # per head, [B, H, M, M]
    c_i  = concat_heads( sum_j a_ij v_j )                                # [B, M, w]
    out_i = W_out relu( W_mix [h_i, c_i] )                               # [B, M, out]
    params_n = mean of out_i over the examples i of class n               # [B, N, 2d]

pi_j are the pairwise network's partner weights (1/M with equal shots, so log pi_j is the same
for every j and cancels in the softmax; with unequal shots each class gets the same total prior
weight). Like the pairs, the cost is O((N*K)^2 * d) (the scores) plus O(N*K * d^2) (the
projections), and nothing depends on the order of the examples or on which class is called n:
relabelling the classes permutes the rows of the output the same way. All maps are bias-free
with Glorot init, as in the rest of LEO, and none has an activation after it but W_mix (means
and raw scales must be free to be negative).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from leo_lightning.models.relation import class_means, partner_weights

HEADS = 4


class AttentionRelation(nn.Module):
    """Multi-head attention over a task's support codes, then the mean over each class.

    `heads`: gcd(heads, 2d) heads are used, so that they always divide the width 2d (4 for an
    even d, else 2). `out_dim`: 2d by default (mean | raw scale per class); d for a refinement
    round (`relation_rounds.RelationRounds`).
    """

    def __init__(self, latent_dim: int, out_dim: int | None = None, heads: int = HEADS):
        super().__init__()
        width = 2 * latent_dim
        out_dim = width if out_dim is None else out_dim
        self.heads = math.gcd(heads, width)
        self.query = nn.Linear(latent_dim, width, bias=False)
        self.key = nn.Linear(latent_dim, width, bias=False)
        self.value = nn.Linear(latent_dim, width, bias=False)
        self.mix = nn.Linear(latent_dim + width, width, bias=False)
        self.out = nn.Linear(width, out_dim, bias=False)
        for layer in self._layers():
            nn.init.xavier_uniform_(layer.weight)

    def _layers(self) -> list[nn.Linear]:
        return [self.query, self.key, self.value, self.mix, self.out]

    def forward(self, codes: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """codes [B, M, d], labels [B, M] -> Gaussian params [B, N, out] (mean | raw scale)."""
        return class_means(self.per_example(codes, labels, n_way), labels, n_way)

    def per_example(self, codes: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """codes [B, M, d], labels [B, M] -> one output per example [B, M, out]."""
        b, m, _ = codes.shape
        q, k, v = (self._split(layer(codes)) for layer in (self.query, self.key, self.value))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, H, M(i), M(j)]
        prior = partner_weights(labels, n_way, scores.dtype).log()  # [B, M(j)]
        attention = torch.softmax(scores + prior[:, None, None, :], dim=-1)
        context = (attention @ v).transpose(1, 2).reshape(b, m, -1)  # [B, M, 2d]
        hidden = torch.relu(self.mix(torch.cat([codes, context], dim=-1)))  # [B, M, 2d]
        return self.out(hidden)  # [B, M, out]

    def _split(self, x: Tensor) -> Tensor:
        """[B, M, 2d] -> [B, H, M, 2d/H]."""
        b, m, width = x.shape
        return x.view(b, m, self.heads, width // self.heads).transpose(1, 2)

    def regularized_weights(self) -> list[Tensor]:
        """Every weight matrix takes LEO's L2 penalty (lambda1), as the pairwise layers do."""
        return [layer.weight for layer in self._layers()]
