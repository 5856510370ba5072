"""MAML's own settings (strategy.sgd_steps, sgd_lr, first_order) no longer share LEO's names;
the spellings of 0.2.0 keep working, in a command line and in a stored checkpoint, and say so."""

from __future__ import annotations

import logging

import pytest
from conftest import ROOT
from helpers import tiny_module
from hydra import compose, initialize_config_dir

from leo_lightning.config.schemas import register_configs
from leo_lightning.config.validation import validate
from leo_lightning.errors import ConfigError

register_configs()
MAML = "leo_lightning.strategies.MAML"


def validated(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    validate(cfg)
    return cfg


def test_mamls_steps_rate_and_order_are_its_own_settings():
    cfg = validated("strategy=maml", "strategy.sgd_steps=3", "strategy.sgd_lr=0.1")
    strategy = cfg.strategy
    assert (strategy.sgd_steps, strategy.sgd_lr, strategy.first_order) == (3, 0.1, False)
    assert cfg.model.inner_steps == 0  # LEO's latent steps: none


def test_fomaml_is_maml_with_its_first_order_setting():
    cfg = validated("strategy=fomaml")
    assert cfg.strategy.first_order is True and cfg.model.first_order is False


@pytest.mark.parametrize(
    ("old", "new_key", "value"),
    [
        ("model.inner_steps=3", "sgd_steps", 3),
        ("strategy.inner_lr=0.1", "sgd_lr", 0.1),
        ("model.first_order=true", "first_order", True),
    ],
)
def test_an_old_spelling_moves_to_the_new_key_and_says_so(old, new_key, value, caplog):
    with caplog.at_level(logging.WARNING):
        cfg = validated("strategy=maml", old)
    assert cfg.strategy[new_key] == value
    assert "inner_lr" not in cfg.strategy and cfg.model.inner_steps == 0
    assert not cfg.model.first_order
    assert f"is strategy.{new_key} with strategy=maml" in caplog.text


def test_per_tasks_old_step_count_moves_to_its_adam_steps_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = validated("strategy=per_task", "model.inner_steps=7")
    assert cfg.strategy.adam_steps == 7 and cfg.model.inner_steps == 0
    assert "is strategy.adam_steps with strategy=per_task" in caplog.text


def test_a_moved_value_is_checked_under_its_new_name():
    with pytest.raises(ConfigError, match=r"strategy.sgd_lr=0.0: must be > 0"):
        validated("strategy=maml", "strategy.inner_lr=0")


def test_leos_own_steps_are_untouched_for_a_leo_strategy():
    cfg = validated("model.inner_steps=3", "model.first_order=true")
    assert cfg.model.inner_steps == 3 and cfg.model.first_order is True


def test_a_checkpoint_of_0_2_0_builds_maml_with_its_stored_steps_rate_and_order():
    # what a 0.2.0 checkpoint stored: the rate in the strategy, the steps and order in the model
    module = tiny_module(
        strategy={"_target_": MAML, "inner_lr": 0.2, "batch_norm": "support"},
        inner_steps=3,
        finetune_steps=0,
        first_order=True,
    )
    strategy = module.strategy
    assert (strategy.sgd_steps, strategy.sgd_lr, strategy.first_order) == (3, 0.2, True)
    assert module.hparams.strategy["sgd_steps"] == 3 and module.hparams.inner_steps == 0


def test_a_new_checkpoint_keeps_its_own_steps_whatever_the_model_default():
    module = tiny_module(strategy={"_target_": MAML, "sgd_steps": 2}, inner_steps=5)
    assert module.strategy.sgd_steps == 2
