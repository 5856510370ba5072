"""amortized_pure learns the scale of its logits (unit-norm features and no inner steps would
leave it to the decoder alone), starting where the paper's ablation starts."""

from __future__ import annotations

import torch
from helpers import random_episode, tiny_module

PURE = "leo_lightning.strategies.AmortizedPure"


def pure(**settings):
    torch.manual_seed(0)
    strategy = {"_target_": PURE, **settings}
    return tiny_module(strategy=strategy, inner_steps=0, finetune_steps=0)


def test_the_scale_starts_at_one_so_the_logits_start_as_the_ablations():
    scaled, plain = pure().eval(), pure(learn_logit_scale=False).eval()
    plain.load_state_dict(scaled.state_dict(), strict=False)  # same weights, no scale
    episode = random_episode()
    torch.testing.assert_close(scaled(episode).query_logits, plain(episode).query_logits)


def test_the_scale_is_meta_learned():
    module = pure().train()
    episode = random_episode()
    module.meta_loss(module(episode), episode.query_y)["loss"].backward()
    assert module.strategy.log_logit_scale.grad.abs() > 0


def test_without_it_there_is_no_scale_parameter():
    assert pure(learn_logit_scale=False).strategy.log_logit_scale is None


def test_a_checkpoint_from_before_the_scale_loads_with_scale_one():
    old = pure(learn_logit_scale=False).state_dict()  # what 0.2.0 saved: no scale
    module = pure()
    module.load_state_dict(old)  # strict
    assert float(module.strategy.log_logit_scale) == 0.0
