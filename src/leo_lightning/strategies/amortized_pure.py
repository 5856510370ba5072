"""`amortized_pure`: LEO's conditional generator alone (the paper's "no inner loop" ablation).

The encoder and relation network predict each class's latent code from the support set, the
decoder turns it into classifier weights, and the queries are classified: one forward pass,
no latent steps and no fine-tuning, whatever `model.inner_steps` and `model.finetune_steps`
say (the validation rejects non-zero values, so a run never claims steps it did not take).
"""

from __future__ import annotations

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.amortized import Amortized
from leo_lightning.strategies.base import LATENT_BATCH_NORM, TaskOutput, n_way_of
from leo_lightning.strategies.spec import NO_STEPS, StrategySpec


class AmortizedPure(Amortized):
    spec = StrategySpec(
        name="amortized_pure",
        summary="LEO's encoder, relation network and decoder alone: one forward pass, no steps",
        steps=NO_STEPS,
        fitted_per_task="nothing: each class's code is predicted from the support set in one "
        "forward pass and decoded into classifier weights",
        meta_learned="the backbone, encoder, relation network and decoder",
        settings={"batch_norm": LATENT_BATCH_NORM},
        switches=frozenset({"relation", "relation_rounds", "decoder", "decoder_experts"}),
        why_not="it takes no latent or fine-tuning steps",
    )

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way = n_way_of(episode)
        support, query = self.episode_features(net, episode)
        z, kl = self.initial_latents(net, support, episode.support_y, n_way)
        return TaskOutput(
            query_logits=net.logits(query, net.decode(z)),
            kl=kl,
            encoder_penalty=kl.new_zeros(()),  # no adapted code to pull towards
            latents=(z.detach(), z.detach()),
        )

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        return 0
