"""LEO's relation network: every ordered pair of support codes -> per-class Gaussian params."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leo_lightning.models.shots import shot_weights


def class_means(values: Tensor, labels: Tensor, n_way: int) -> Tensor:
    """Average the rows of each class: [B, M, D], labels [B, M] -> [B, N, D]."""
    one_hot = F.one_hot(labels, n_way).to(values.dtype)  # [B, M, N]
    sums = one_hot.transpose(1, 2) @ values  # [B, N, D]
    return sums / one_hot.sum(dim=1).unsqueeze(-1).clamp_min(1)


def partner_weights(labels: Tensor, n_way: int, dtype: torch.dtype) -> Tensor:
    """How much each support example counts as a partner: [B, M], summing to 1 per task.

    The plain 1/M with equal shots; with unequal shots every class gets the same total weight
    (`shot_weights`), so a class with more shots does not dominate every other class's code."""
    return shot_weights(labels, n_way).to(dtype) / labels.shape[1]


class RelationNetwork(nn.Module):
    """3 bias-free linear layers of width 2d, ReLU between them and none after the last.

    The first layer applied to the concatenation [h_i, h_j] equals W_left h_i + W_right h_j, so
    it is computed once per code and broadcast over the (N*K)^2 pairs; the last layer is linear
    and therefore commutes with the average over partners j, so it runs on N*K rows only.
    The average over partners weights every class equally (`partner_weights`).

    `out_dim` (default 2d: a mean and a raw scale per class) is the last layer's width; a
    refinement round of `relation_rounds.RelationRounds` uses d instead, a new code per example.
    """

    def __init__(self, latent_dim: int, out_dim: int | None = None):
        super().__init__()
        width = 2 * latent_dim
        out_dim = width if out_dim is None else out_dim
        widths = [(width, width), (width, width), (width, out_dim)]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in widths)
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, codes: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """codes [B, M, d], labels [B, M] -> Gaussian params [B, N, 2d] (mean | raw scale)."""
        return class_means(self.per_example(codes, labels, n_way), labels, n_way)

    def per_example(self, codes: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """codes [B, M, d], labels [B, M] -> each code's average over its partners [B, M, out]."""
        d = codes.shape[-1]
        w_left, w_right = self.layers[0].weight[:, :d], self.layers[0].weight[:, d:]
        left, right = codes @ w_left.T, codes @ w_right.T  # [B, M, 2d] each
        pairs = torch.relu(left.unsqueeze(2) + right.unsqueeze(1))  # [B, M(i), M(j), 2d]
        pairs = torch.relu(self.layers[1](pairs))
        partners = partner_weights(labels, n_way, pairs.dtype)  # [B, M], sum 1
        partner_mean = torch.einsum("bijc,bj->bic", pairs, partners)  # [B, M(i), 2d]
        return self.layers[2](partner_mean)  # [B, M, out]

    def regularized_weights(self) -> list[Tensor]:
        """The weight matrices that take LEO's L2 penalty (lambda1)."""
        return [layer.weight for layer in self.layers]
