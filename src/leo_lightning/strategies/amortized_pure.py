"""`amortized_pure`: LEO's conditional generator alone (the paper's "no inner loop" ablation).

The encoder and relation network predict each class's latent code from the support set, the
decoder turns it into classifier weights, and the queries are classified: one forward pass,
no latent steps and no fine-tuning, whatever `model.inner_steps` and `model.finetune_steps`
say (the validation rejects non-zero values, so a run never claims steps it did not take).

A learned logit scale (`strategy.learn_logit_scale`, on by default): features are unit-norm and
the classifier a bias-free dot product, so logits are capped by |w|. LEO's inner steps enlarge
w; without them the decoder alone would have to learn the scale, while the KL pulls the codes
towards zero. A scalar s = exp(log_scale), starting at 1, multiplies the logits (as the learned
temperature of cosine classifiers and ProtoNets variants), so the ablation measures the missing
steps rather than a missing scale. A checkpoint written before it existed loads with s = 1,
which is what it was trained with.
"""

from __future__ import annotations

import torch
from torch import nn

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.amortized import Amortized
from leo_lightning.strategies.base import LATENT_BATCH_NORM, ModelDims, TaskOutput, n_way_of
from leo_lightning.strategies.spec import NO_STEPS, Setting, StrategySpec

LEARN_LOGIT_SCALE = Setting(
    True,
    "true: a learned scalar (starting at 1) multiplies the logits, since unit-norm features and "
    "no inner steps leave the logits' scale to the decoder alone; false: the paper's ablation "
    "as it was",
)


class AmortizedPure(Amortized):
    spec = StrategySpec(
        name="amortized_pure",
        summary="LEO's encoder, relation network and decoder alone: one forward pass, no steps",
        steps=NO_STEPS,
        fitted_per_task="nothing: each class's code is predicted from the support set in one "
        "forward pass and decoded into classifier weights",
        meta_learned="the backbone, encoder, relation network and decoder",
        settings={"batch_norm": LATENT_BATCH_NORM, "learn_logit_scale": LEARN_LOGIT_SCALE},
        switches=frozenset({"relation", "relation_rounds", "decoder", "decoder_experts"}),
        why_not="it takes no latent or fine-tuning steps",
    )

    def __init__(
        self,
        dims: ModelDims,
        batch_norm: str = LATENT_BATCH_NORM.default,
        learn_logit_scale: bool = LEARN_LOGIT_SCALE.default,
    ):
        super().__init__(dims, batch_norm=batch_norm)
        self.check_settings(learn_logit_scale=learn_logit_scale)
        self.log_logit_scale = nn.Parameter(torch.zeros(())) if learn_logit_scale else None

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way = n_way_of(episode)
        support, query = self.episode_features(net, episode)
        z, kl = self.initial_latents(net, support, episode.support_y, n_way)
        logits = net.logits(query, net.decode(z))  # [B, N*Q, N]
        if self.log_logit_scale is not None:
            logits = logits * self.log_logit_scale.exp()
        return TaskOutput(
            query_logits=logits,
            kl=kl,
            encoder_penalty=kl.new_zeros(()),  # no adapted code to pull towards
            latents=(z.detach(), z.detach()),
        )

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        return 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint of 0.2.0 has no logit scale: it was trained with s = 1 (log 0)."""
        key = f"{prefix}log_logit_scale"
        if self.log_logit_scale is not None and key not in state_dict:
            state_dict[key] = torch.zeros(())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
