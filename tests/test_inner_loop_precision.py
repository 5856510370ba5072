"""Each strategy records the precision its adaptation computes in (results.json), and that is
the precision its steps really run in: LEO's loops in fp32 under a bf16 backbone, MAML's steps
in the backbone's bf16."""

from __future__ import annotations

import pytest
import torch
from helpers import random_episode, tiny_module

from leo_lightning.models import leo as leo_module

STRATEGY = "leo_lightning.strategies."


def bf16_module(strategy: str, **strategy_settings):
    module = tiny_module(
        strategy={"_target_": STRATEGY + strategy, **strategy_settings},
        backbone_autocast="bf16",
        **({"inner_steps": 0, "finetune_steps": 0} if strategy != "Amortized" else {}),
    )
    module.net.resolve_precision(torch.device("cpu"))
    return module.train()


def test_leos_steps_are_recorded_and_run_in_fp32_under_a_bf16_backbone(monkeypatch):
    module = bf16_module("Amortized")
    seen = []
    original = leo_module.support_gradient

    def watching(features, targets, weights):
        seen.append((features.dtype, weights.dtype))
        return original(features, targets, weights)

    monkeypatch.setattr(leo_module, "support_gradient", watching)
    module.strategy(module.net, random_episode())
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "fp32"


def test_mamls_steps_are_recorded_and_run_in_the_backbones_bf16():
    module = bf16_module("MAML", sgd_steps=2)
    dtypes = []
    conv = next(m for m in module.net.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda _module, _inputs, output: dtypes.append(output.dtype))
    module.strategy(module.net, random_episode())
    assert len(dtypes) > 2 and set(dtypes) == {torch.bfloat16}  # the steps' passes included
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "bf16"


@pytest.mark.parametrize("strategy", ["ProtoNet", "AmortizedPure"])
def test_a_strategy_without_adaptation_steps_records_none(strategy):
    module = bf16_module(strategy)
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "none"
