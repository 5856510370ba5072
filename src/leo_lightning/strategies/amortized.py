"""`amortized`: an encoder and relation network predict q(z) per class from the support set.

With `model.inner_steps=0 model.finetune_steps=0` this is pure amortized inference (one forward
pass); with steps it is the paper's LEO. The relation network is the paper's pairwise one unless
`model.relation` / `model.relation_rounds` choose another (models/relation_rounds.py).
"""

from __future__ import annotations

from torch import Tensor

from leo_lightning.models.distributions import sample_gaussian
from leo_lightning.models.encoder import Encoder
from leo_lightning.models.leo import LEONet
from leo_lightning.models.relation_rounds import build_relation
from leo_lightning.models.switches import SWITCHES
from leo_lightning.strategies.base import LATENT_BATCH_NORM, LatentStrategy, ModelDims
from leo_lightning.strategies.spec import LATENT_STEPS, StrategySpec


class Amortized(LatentStrategy):
    spec = StrategySpec(
        name="amortized",
        summary="LEO: an encoder and relation network give each class's initial code, then "
        "latent and fine-tuning steps",
        steps=LATENT_STEPS,
        fitted_per_task="each class's latent code (N x d) by latent steps from the encoder's "
        "prediction, then the decoded N x F classifier weights by fine-tuning steps",
        meta_learned="the backbone, encoder, relation network, decoder and the per-dimension "
        "latent and fine-tuning rates",
        settings={"batch_norm": LATENT_BATCH_NORM},
        switches=frozenset(SWITCHES),
    )

    def __init__(self, dims: ModelDims, batch_norm: str = LATENT_BATCH_NORM.default):
        super().__init__(batch_norm)
        self.encoder = Encoder(dims.feature_dim, dims.latent_dim, dims.dropout)
        self.relation = build_relation(dims.relation, dims.latent_dim, dims.relation_rounds)

    def latent_params(self, support: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """support features [B, N*K, F] -> q(z)'s parameters per class [B, N, 2d] (mean | raw
        scale, models/distributions.py)."""
        return self.relation(self.encoder(support), labels, n_way)

    def initial_latents(
        self, net: LEONet, support: Tensor, labels: Tensor, n_way: int
    ) -> tuple[Tensor, Tensor]:
        return sample_gaussian(self.latent_params(support, labels, n_way), sample=net.sampling)

    def regularized_weights(self) -> list[Tensor]:
        return [self.encoder.linear.weight, *self.relation.regularized_weights()]
