"""The hyperparameter searches in conf/hparams_search compose, sweep only keys that exist, and
propose only valid configs; hparams_search=omniglot_recipe runs short proxies of the recipe."""

from __future__ import annotations

import copy

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution

from hydra_plugins.leo_optuna_sweeper._search_space import build_search_space
from leo_lightning.config.schemas import register_configs
from leo_lightning.config.validation import config_problems

register_configs()
SEARCHES = sorted(p.stem for p in (ROOT / "conf" / "hparams_search").glob("*.yaml"))
ABSENT = object()


def compose_search(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "train", overrides=[f"hparams_search={name}", *overrides], return_hydra_config=True
        )


def unknown_keys(cfg, keys) -> list[str]:
    return [key for key in keys if OmegaConf.select(cfg, key, default=ABSENT) is ABSENT]


def extremes(distribution) -> list:
    """Every choice of a categorical dimension, the two ends of a numeric one."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def with_values(cfg, values: dict):
    cfg = copy.deepcopy(cfg)
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)
    return cfg


@pytest.mark.parametrize("name", SEARCHES)
def test_every_swept_key_exists_in_the_composed_config(name):
    cfg = compose_search(name)
    assert unknown_keys(cfg, cfg.hydra.sweeper.params) == []


def test_the_key_check_catches_a_misspelt_key():
    cfg = compose_search("omniglot_recipe")
    assert unknown_keys(cfg, ["model.latnt_dim", "data.meta_batch_size"]) == ["model.latnt_dim"]


@pytest.mark.parametrize("name", SEARCHES)
def test_every_value_the_search_can_propose_is_a_valid_config(name):
    cfg = compose_search(name)
    space = build_search_space(OmegaConf.to_container(cfg.hydra.sweeper.params), [])
    proposals = [{d.key: value} for d in space.dimensions for value in extremes(d.distribution)]
    for end in (0, -1):  # every key at its first, then at its last value, together
        proposals.append({d.key: extremes(d.distribution)[end] for d in space.dimensions})
    for values in proposals:
        assert config_problems(with_values(cfg, values)) == [], values


def test_the_recipe_search_trials_are_fixed_step_proxies_of_the_recipe():
    cfg = compose_search("omniglot_recipe")
    assert cfg.hydra.runtime.choices.experiment == "omniglot_minimal"
    assert cfg.hydra.runtime.choices["data/augment"] == "affine"
    assert list(cfg.data.source.val_alphabets) == ["Tagalog"]
    assert cfg.data.val_episodes == 600 and cfg.optimized_metric == "best_val_acc"
    assert cfg.model.lr_schedule == "cosine" and cfg.trainer.max_steps == 3000
    assert cfg.trainer.max_time == "00:00:10:00"  # only a backstop: the steps are the budget
    assert cfg.test is False and cfg.hydra.sweeper.direction == "maximize"


def test_the_recipe_search_leaves_out_the_keys_that_set_a_steps_cost():
    """Fixed-step trials would favour a larger meta-batch or backbone at no charge."""
    swept = set(compose_search("omniglot_recipe").hydra.sweeper.params)
    assert swept == {
        "model.lr",
        "model.warmup_steps",
        "model.latent_dim",
        "model.inner_steps",
        "model.dropout",
        "model.kl_weight",
        "model.decoder",
    }
    assert not swept & {"data.meta_batch_size", "model.backbone.channels", "data.n_query"}


@pytest.mark.slow
def test_a_recipe_trial_runs_with_a_cosine_schedule(tmp_path):
    import optuna
    import torch
    from helpers import run_script
    from optuna.trial import TrialState

    tiny = ["trainer.max_steps=3", "trainer.val_check_interval=3", "data.val_episodes=8"]
    quiet = ["~callbacks.progress_bar", "trainer.enable_progress_bar=false"]
    fixed = ["model.warmup_steps=1"]  # a swept key given on the command line is not searched
    proc = run_script(
        "train.py", tmp_path, "-m", "hparams_search=omniglot_recipe", "hydra.sweeper.n_trials=1",
        *tiny, *quiet, *fixed,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    search = tmp_path / "outputs" / "searches" / "omniglot_recipe"
    study = optuna.load_study(study_name="omniglot_recipe", storage=f"sqlite:///{search}/optuna.db")
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and "model.warmup_steps" not in trial.params
    (checkpoint,) = (search / "0" / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["global_step"] == 3 and saved["lr_schedulers"][0]["last_epoch"] == 3
