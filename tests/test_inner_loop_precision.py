"""Each strategy records the precision its adaptation computes in (results.json), and that is
the precision its steps really run in: fp32 under a bf16 backbone for every strategy by default
(LEO's loops, MAML's family, per_task), the backbone's bf16 where a strategy whose steps run the
backbone is told `adaptation_precision=backbone`."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import quiet_trainer, random_episode, tiny_module

from leo_lightning.models import leo as leo_module
from leo_lightning.training.module import LEOModule

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


def conv_output_dtypes(module) -> list[torch.dtype]:
    """The dtype of every convolution's output while the strategy adapts (per_task runs fresh
    copies of the backbone, so every Conv2d's call is watched, not the module's own)."""
    dtypes = []
    hooked = torch.nn.Conv2d.__call__

    def calling(self, *args, **kwargs):
        out = hooked(self, *args, **kwargs)
        dtypes.append(out.dtype)
        return out

    torch.nn.Conv2d.__call__ = calling
    try:
        module.strategy(module.net, random_episode())
    finally:
        torch.nn.Conv2d.__call__ = hooked
    return dtypes


ADAPTING_THROUGH_THE_BACKBONE = [("MAML", {"sgd_steps": 2}), ("MetaSGD", {"sgd_steps": 2})]


@pytest.mark.parametrize(
    ("strategy", "settings"), [*ADAPTING_THROUGH_THE_BACKBONE, ("PerTask", {"adam_steps": 2})]
)
def test_steps_through_the_backbone_run_and_are_recorded_in_fp32_by_default(strategy, settings):
    module = bf16_module(strategy, **settings)
    dtypes = conv_output_dtypes(module)
    assert len(dtypes) > 2 and set(dtypes) == {torch.float32}  # the steps' passes included
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "fp32"


@pytest.mark.parametrize(("strategy", "settings"), ADAPTING_THROUGH_THE_BACKBONE)
def test_steps_through_the_backbone_can_run_and_be_recorded_in_the_backbones_bf16(
    strategy, settings
):
    module = bf16_module(strategy, adaptation_precision="backbone", **settings)
    dtypes = conv_output_dtypes(module)
    assert len(dtypes) > 2 and set(dtypes) == {torch.bfloat16}
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "bf16"


def test_a_bad_adaptation_precision_is_refused_naming_the_key():
    with pytest.raises(Exception, match=r"strategy.adaptation_precision='bf16'.*fp32, backbone"):
        bf16_module("MAML", adaptation_precision="bf16")


@pytest.mark.parametrize("strategy", ["ProtoNet", "AmortizedPure"])
def test_a_strategy_without_adaptation_steps_records_none(strategy):
    module = bf16_module(strategy)
    assert module.strategy.inner_loop_precision(module.net, torch.device("cpu")) == "none"


def saved_maml(tmp_path, strategy: dict):
    """A MAML checkpoint of the tiny model, with its stored strategy config as given."""
    module = tiny_module(strategy=strategy, inner_steps=0, finetune_steps=0)
    module.run_config = {"strategy": strategy}  # what leo-train stores: the composed config
    trainer = quiet_trainer(max_steps=0)
    trainer.strategy.connect(module)
    path = tmp_path / "maml.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"]["strategy"] = strategy
    torch.save(checkpoint, path)
    return path


def test_a_maml_checkpoint_older_than_the_setting_adapts_in_the_backbones_precision(
    tmp_path, caplog
):
    path = saved_maml(tmp_path, {"_target_": STRATEGY + "MAML", "sgd_steps": 1})
    with caplog.at_level(logging.INFO):
        module = LEOModule.load_from_checkpoint(path)
    assert module.strategy.adaptation_precision == "backbone"  # what it was trained with
    assert "strategy.adaptation_precision: not in this checkpoint" in caplog.text


def test_a_maml_checkpoint_with_the_setting_keeps_it(tmp_path):
    strategy = {"_target_": STRATEGY + "MAML", "sgd_steps": 1, "adaptation_precision": "fp32"}
    module = LEOModule.load_from_checkpoint(saved_maml(tmp_path, strategy))
    assert module.strategy.adaptation_precision == "fp32"
