"""model.backbone_freeze and model.backbone_lr_scale: a pretrained backbone kept as it is, or
meta-trained at a rate of its own."""

from __future__ import annotations

import pytest
import torch
from helpers import random_episode, tiny_module

from leo_lightning.errors import ConfigError


def backbone_state(module):
    return {k: v.clone() for k, v in module.net.backbone.state_dict().items()}


def test_a_frozen_backbone_is_unchanged_by_meta_training_batch_norm_statistics_included():
    module = tiny_module(backbone_freeze=True).train()
    before = backbone_state(module)
    optimizer = module.configure_optimizers()
    module.meta_update(random_episode(), optimizer, 0)
    after = backbone_state(module)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_frozen_backbone_stays_in_eval_mode_when_the_module_trains():
    module = tiny_module(backbone_freeze=True).train()
    assert module.net.training and not module.net.backbone.training


def test_a_frozen_backbone_is_refused_for_a_strategy_that_adapts_it():
    with pytest.raises(ConfigError, match="model.backbone_freeze=true: strategy=maml adapts"):
        tiny_module(
            backbone_freeze=True,
            strategy={"_target_": "leo_lightning.strategies.MAML"},
            finetune_steps=0,
        )


def test_the_backbone_gets_its_own_rate():
    module = tiny_module(backbone_lr_scale=0.1, lr=2e-3)
    groups = module.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([2e-4, 2e-3])
    backbone = {id(p) for p in module.net.backbone.parameters()}
    assert {id(p) for p in groups[0]["params"]} == backbone
    assert not backbone & {id(p) for p in groups[1]["params"]}


def test_a_resume_with_another_lr_keeps_the_backbones_ratio():
    module = tiny_module(backbone_lr_scale=0.1, lr=2e-3)
    checkpoint = {
        "optimizer_states": [
            {"param_groups": [{"lr": 1e-4, "lr_scale": 0.1}, {"lr": 1e-3, "lr_scale": 1.0}]}
        ]
    }
    module._apply_configured_lr(checkpoint)
    lrs = [g["lr"] for g in checkpoint["optimizer_states"][0]["param_groups"]]
    assert lrs == pytest.approx([2e-4, 2e-3])
