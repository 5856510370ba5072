"""`universal`: one meta-learned starting point (z_meta, f_meta) for every task, MAML-style.

z_meta is a single learned latent used for every class slot, because labels are exchangeable:
no slot may start out different from another. f_meta is the meta-learned backbone, decoder and
rates that the module already holds. Each task then takes the latent and fine-tuning steps,
and meta-training differentiates through them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.base import LATENT_BATCH_NORM, LatentStrategy, ModelDims
from leo_lightning.strategies.spec import LATENT_STEPS, StrategySpec


class Universal(LatentStrategy):
    spec = StrategySpec(
        name="universal",
        summary="one meta-learned code z_meta starts every class, then latent and fine-tuning "
        "steps (MAML-like)",
        steps=LATENT_STEPS,
        fitted_per_task="each class's latent code (N x d) by latent steps from z_meta, then the "
        "decoded N x F classifier weights by fine-tuning steps",
        meta_learned="the starting code z_meta, the backbone, decoder and the per-dimension "
        "latent and fine-tuning rates",
        settings={"batch_norm": LATENT_BATCH_NORM},
        switches=frozenset({"decoder", "decoder_experts", "per_step_rates", "latent_step_bound"}),
        why_not="it starts every class from the learned z_meta: no encoder or relation network",
    )

    def __init__(self, dims: ModelDims, batch_norm: str = LATENT_BATCH_NORM.default):
        super().__init__(batch_norm)
        self.z_meta = nn.Parameter(torch.zeros(dims.latent_dim))

    def initial_latents(
        self, net: LEONet, support: Tensor, labels: Tensor, n_way: int
    ) -> tuple[Tensor, Tensor]:
        z0 = self.z_meta.expand(support.shape[0], n_way, -1)  # [B, N, d], same for every class
        return z0, support.new_zeros(())
