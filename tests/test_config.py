"""Every config group composes, the documented keys work as written, and mistakes fail early."""

from __future__ import annotations

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from leo_lightning.config.schemas import register_configs

register_configs()


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group",
    [
        "data",
        "data/augment",
        "model",
        "model/backbone",
        "strategy",
        "trainer",
        "logger",
        "callbacks",
        "paths",
        "experiment",
        "debug",
        "hparams_search",
    ],
)
def test_every_option_of_every_group_composes(group):
    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        override = f"{group}={option}"
        if option.endswith(PRETRAIN_SUFFIX):  # a leo-pretrain experiment
            cfg = compose_pretrain(override)
            assert cfg.data.n_way >= 2 and cfg.model.backbone._target_ and cfg.pretrain.lr > 0
            continue
        cfg = compose_train(override)
        assert cfg.data.n_way >= 2 and cfg.model._target_ and cfg.strategy._target_


# Experiments named *_pretrain are leo-pretrain's (they set pretrain.<key>, not a model to train)
PRETRAIN_SUFFIX = "_pretrain"


def compose_pretrain(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("pretrain", overrides=list(overrides))


@pytest.mark.parametrize("group", ["data", "model/backbone", "pretrain", "debug"])
def test_every_option_a_pretraining_reads_composes_with_the_pretrain_config(group):
    for option in options(group):
        cfg = compose_pretrain(f"{group}={option}")
        assert cfg.model.backbone._target_ and cfg.pretrain.batch_size >= 1


def test_the_embed_config_composes_with_a_checkpoint_path():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("embed", overrides=["ckpt_path=x.ckpt", "views=3"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.views == 3


def test_eval_config_composes_with_a_checkpoint_path():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=x.ckpt", "data.test_episodes=600"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.data.test_episodes == 600


DOCUMENTED_KEYS = {
    "model.latent_dim": 128,
    "model.inner_lr": 0.5,
    "model.inner_steps": 3,
    "model.finetune_steps": 2,
    "model.finetune_lr": 0.01,
    "model.first_order": True,
    "data.n_way": 20,
    "data.k_shot": 5,
    "data.n_query": 7,
    "data.meta_batch_size": 8,
    "data.image_size": 32,
    "data.test_episodes": 600,
    "trainer.max_steps": 17,
    "seed": 3,
}


@pytest.mark.parametrize(("key", "value"), DOCUMENTED_KEYS.items())
def test_documented_key_overrides_as_written(key, value):
    cfg = compose_train(f"{key}={value}")
    assert OmegaConf.select(cfg, key) == value


def test_image_size_reaches_the_model_and_the_dataset():
    cfg = compose_train("data.image_size=32")
    assert cfg.model.input_shape == [1, 32, 32] and cfg.data.source.image_size == 32


def test_strategy_is_chosen_by_name():
    assert compose_train("strategy=amortized").strategy._target_.endswith("Amortized")


@pytest.mark.parametrize("override", ["model.latnt_dim=3", "data.n_wya=5", "trainer.max_stesp=3"])
def test_unknown_key_fails_at_composition_naming_it(override):
    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[-1]):
        compose_train(override)


@pytest.mark.parametrize("override", ["model.latent_dim=abc", "data.k_shot=1.5", "seed=x"])
def test_wrong_type_fails_at_composition_naming_the_key(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=key.split(".")[-1]):
        compose_train(override)


def test_per_task_brings_its_own_step_budget_and_the_command_line_still_wins():
    cfg = compose_train("strategy=per_task")
    assert cfg.strategy.adam_steps == 100
    assert cfg.model.inner_steps == 0 and cfg.model.finetune_steps == 0
    assert cfg.strategy.reconstruction_weight == 10.0
    assert compose_train("strategy=per_task", "strategy.adam_steps=7").strategy.adam_steps == 7


def test_strategy_keys_are_checked_against_their_schema():
    with pytest.raises(ConfigCompositionException, match="lrr"):
        compose_train("strategy=per_task", "strategy.lrr=1")


@pytest.mark.slow
def test_help_lists_the_config_options_but_not_the_schemas(tmp_path):
    from helpers import run_script

    proc = run_script("train.py", tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "data: combined, embeddings, folder, glyphs, leo_embeddings, omniglot, omniglot_minimal\n"
        in proc.stdout
    )
    assert (
        "strategy: amortized, amortized_pure, fomaml, logistic_regression, maml, meta_sgd, "
        "nearest_centroid, per_task, protonet, universal\n" in proc.stdout
    )
    assert "schema_" not in proc.stdout and "source_" not in proc.stdout
    # every strategy's settings, written from its spec
    assert "strategy.sgd_lr (default 0.4; > 0): SGD rate" in proc.stdout
    assert "\nprotonet: Prototypical Networks" in proc.stdout
