"""`protonet`: Prototypical Networks (Snell et al., 2017); no inner loop, nothing adapted.

A class's prototype is the mean of its support features; a query's logits are the negative
squared Euclidean distances to the prototypes. Only the backbone is meta-learned. Features are
the raw backbone output, as in the original (unit-norm features would bound every distance to
[0, 4] and keep the softmax from ever becoming confident). BatchNorm as LEO's: one pass over the
meta-batch in training, running statistics at evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.base import ModelDims, Strategy, TaskOutput, n_way_of
from leo_lightning.strategies.spec import NO_STEPS, StrategySpec


class ProtoNet(Strategy):
    spec = StrategySpec(
        name="protonet",
        summary="Prototypical Networks: queries scored by distance to each class's mean feature",
        steps=NO_STEPS,
        fitted_per_task="nothing: each class's prototype is the mean of its support features",
        meta_learned="the backbone",
        why_not="it classifies by distances to class prototypes: no relation network, decoder "
        "or steps",
        fixed_batch_norm="class means of features normalised with running statistics",
    )
    uses_decoder = False

    def __init__(self, dims: ModelDims):
        super().__init__()

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way, n_support = n_way_of(episode), episode.support_y.shape[1]
        both = torch.cat([episode.support_x, episode.query_x], dim=1)
        features = net.features(both, normalize=False)  # [B, N*K + N*Q, F]
        support, query = features.split([n_support, both.shape[1] - n_support], dim=1)
        logits = -squared_distances(query, prototypes(support, episode.support_y, n_way))
        zero = logits.new_zeros(())
        return TaskOutput(query_logits=logits, kl=zero, encoder_penalty=zero)

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        return 0


def prototypes(features: Tensor, labels: Tensor, n_way: int) -> Tensor:
    """Per-class mean of the support features: [B, N*K, F], labels [B, N*K] -> [B, N, F]."""
    one_hot = torch.nn.functional.one_hot(labels, n_way).to(features.dtype)  # [B, N*K, N]
    return (one_hot.transpose(1, 2) @ features) / one_hot.sum(dim=1).unsqueeze(-1)


def squared_distances(x: Tensor, centres: Tensor) -> Tensor:
    """||x - c||^2 for every pair: [B, M, F] x [B, N, F] -> [B, M, N], expanded as
    |x|^2 - 2 x.c + |c|^2 (no [B, M, N, F] intermediate, no square root to differentiate)."""
    cross = x @ centres.transpose(1, 2)
    return x.square().sum(-1, keepdim=True) - 2 * cross + centres.square().sum(-1).unsqueeze(1)
