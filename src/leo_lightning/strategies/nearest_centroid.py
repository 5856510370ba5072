"""`nearest_centroid`: SimpleShot (Wang et al., 2019) on frozen features; nothing is learned.

The baseline that reviewers hold LEO against on pretrained features: L2-normalise every feature
(SimpleShot's "L2N"; its "CL2N" is this on features the data has already centred on the base
classes' mean), take each class's centroid as the mean of its normalised support features, and
score a query by the negative squared Euclidean distance to each centroid. No step, no setting
learned across tasks, so there is nothing to meta-train: the run is scored directly on the
fixed test episodes with the backbone as it was given (pretrained, or loaded from a file of
features by the `flatten` backbone).

The centroid is the mean of unit vectors, not renormalised, as in SimpleShot. Unit features
bound every distance to [0, 4], so the logits are never confident; that would matter for a
meta-loss, but this strategy has none, and its accuracy depends on the argmax alone.
`strategy.normalize=false` keeps the raw features: ProtoNets' rule on a frozen backbone.

BatchNorm as ProtoNets': one backbone pass over support and queries, normalised at evaluation
by the backbone's running statistics, so each query is classified on its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.base import ModelDims, Strategy, TaskOutput, n_way_of
from leo_lightning.strategies.protonet import prototypes, squared_distances
from leo_lightning.strategies.spec import NO_STEPS, Setting, StrategySpec

SPEC = StrategySpec(
    name="nearest_centroid",
    summary="SimpleShot: distance to each class's mean L2-normalised feature of a frozen backbone",
    steps=NO_STEPS,
    fitted_per_task="nothing: each class's centroid is the mean of its L2-normalised support "
    "features",
    meta_learned="nothing (the backbone is used as given, frozen)",
    settings={
        "normalize": Setting(
            True,
            "true: L2-normalise every feature before the centroids (SimpleShot's L2N); false: "
            "raw backbone features (ProtoNets' rule on a frozen backbone)",
            choices=(True, False),
        )
    },
    why_not="it compares frozen features to class centroids: no relation network, decoder, "
    "latent codes or steps",
    fixed_batch_norm="the frozen backbone's features, normalised with its running statistics",
)


class NearestCentroid(Strategy):
    spec = SPEC
    meta_trained = False
    uses_decoder = False

    def __init__(self, dims: ModelDims, normalize: bool = SPEC.settings["normalize"].default):
        super().__init__()
        self.check_settings(normalize=normalize)
        self.normalize = normalize

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        support, query = frozen_features(net, episode, self.normalize)
        centroids = prototypes(support, episode.support_y, n_way_of(episode))  # [B, N, F]
        logits = -squared_distances(query, centroids)  # [B, N*Q, N]
        zero = logits.new_zeros(())
        return TaskOutput(query_logits=logits, kl=zero, encoder_penalty=zero)

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        return 0


def frozen_features(net: LEONet, episode: Episode, normalize: bool) -> tuple[Tensor, Tensor]:
    """Support and query features [B, N*K, F], [B, N*Q, F], fp32, unit-norm if `normalize`.

    One backbone pass over both, as ProtoNets' (running BatchNorm statistics at evaluation, so
    a query's features do not depend on the other examples). Without a gradient: nothing is
    meta-learned, so a graph back to the backbone would only hold memory. The raw output is
    taken (`normalize=False` in `net.features`) and normalised here, so that the choice is
    this strategy's and any backbone's features are treated alike."""
    n_support = episode.support_y.shape[1]
    both = torch.cat([episode.support_x, episode.query_x], dim=1)  # [B, N*K + N*Q, ...]
    with torch.no_grad():
        features = net.features(both, normalize=False).float()  # [B, N*K + N*Q, F]
    if normalize:
        features = F.normalize(features, dim=-1)
    support, query = features.split([n_support, both.shape[1] - n_support], dim=1)
    return support, query
