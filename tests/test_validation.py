"""Config values are checked before any work; every problem names its key (property-based)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from test_config import compose_train

from leo_lightning.config.validation import RULES, config_problems

BASE = compose_train()
VALID_VALUES = {
    "data.n_way": st.integers(2, 20),
    "data.k_shot": st.integers(1, 5),
    "data.n_query": st.integers(1, 15),
    "model.latent_dim": st.integers(1, 256),
    "model.inner_steps": st.integers(0, 20),
    "model.inner_lr": st.floats(1e-6, 10),
    "model.dropout": st.floats(0, 0.99),
    "data.image_size": st.integers(16, 128),
}
INVALID_VALUES = {
    "data.n_way": st.integers(-5, 1),
    "data.k_shot": st.integers(-5, 0),
    "data.n_query": st.integers(-5, 0),
    "model.latent_dim": st.integers(-5, 0),
    "model.inner_steps": st.integers(-9, -1),
    "model.finetune_steps": st.integers(-9, -1),
    "model.inner_lr": st.floats(-10, 0),
    "model.finetune_lr": st.floats(-10, 0),
    "model.lr": st.floats(-1, 0),
    "data.meta_batch_size": st.integers(-3, 0),
    "data.test_episodes": st.integers(-3, 0),
    "data.image_size": st.integers(1, 15),
    "model.dropout": st.floats(1, 5),
    "model.warmup_steps": st.integers(-5, -1),
}


def with_values(values: dict):
    cfg = copy.deepcopy(BASE)
    for key, value in values.items():
        parent, leaf = key.rsplit(".", 1)
        cfg[parent.split(".")[0]][leaf] = value
    return cfg


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALID_VALUES))
def test_valid_values_pass(values):
    cfg = with_values(values)
    if cfg.data.k_shot + cfg.data.n_query > cfg.data.source.examples_per_class:
        return  # a cross-key rule, tested on its own below
    assert config_problems(cfg) == []


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(INVALID_VALUES)).flatmap(
        lambda key: st.tuples(st.just(key), INVALID_VALUES[key])
    )
)
def test_every_invalid_value_is_rejected_naming_its_key(key_value):
    key, value = key_value
    problems = config_problems(with_values({key: value}))
    assert any(p.startswith(f"{key}=") for p in problems), problems


FLOAT_SETTINGS = [
    "model.inner_lr",
    "model.finetune_lr",
    "model.dropout",
    "model.kl_weight",
    "model.encoder_penalty_weight",
    "model.l2_weight",
    "model.orthogonality_weight",
    "model.lr",
    "model.grad_clip_value",
    "model.grad_clip_norm",
]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("key", FLOAT_SETTINGS)
def test_every_float_setting_must_be_finite(key, value):
    problems = config_problems(with_values({key: value}))
    assert problems == [f"{key}={value!r}: must be a finite number"]


def test_floats_without_a_rule_must_be_finite_too_in_lists_and_interpolations():
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"a": {"betas": [0.5, float("nan")]}, "b": "${c}", "c": -float("inf")})
    assert config_problems(cfg) == [
        "a.betas.1=nan: must be a finite number",
        "b=-inf: must be a finite number",
        "c=-inf: must be a finite number",
    ]


def test_every_rule_key_exists_in_the_default_config_or_the_strategy_it_belongs_to():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        eval_config = compose("eval", overrides=["ckpt_path=x.ckpt"])  # batch_norm is eval's
        pretrain_config = compose("pretrain")  # pretrain.<key>
        embed_config = compose("embed", overrides=["ckpt_path=x.ckpt"])  # views, batch_size
    configs = [BASE, compose_train("strategy=maml"), eval_config, pretrain_config, embed_config]
    for rule in RULES:
        assert any(OmegaConf.select(c, rule.key, default="missing") != "missing" for c in configs)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["strategy=protonet", "model.inner_steps=5"], "model.inner_steps=5: must be 0"),
        (
            ["strategy=amortized_pure", "model.finetune_steps=2"],
            "model.finetune_steps=2: must be 0",
        ),
        (["strategy=maml", "strategy.sgd_steps=0"], "strategy.sgd_steps=0: must be >= 1"),
        (["strategy=meta_sgd", "model.finetune_steps=1"], "model.finetune_steps=1: must be 0"),
        (["strategy=maml", "strategy.sgd_lr=0"], "strategy.sgd_lr=0.0: must be > 0"),
        (["strategy=maml", "strategy.batch_norm=sometimes"], "strategy.batch_norm='sometimes'"),
        (
            ["strategy=universal", "strategy.batch_norm=support"],
            "strategy.batch_norm='support': must be one of running, batch with strategy=universal",
        ),
    ],
)
def test_strategy_keys_out_of_range_are_rejected_naming_key_and_value(overrides, expected):
    problems = config_problems(compose_train(*overrides))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("strategy", ["maml", "fomaml", "meta_sgd", "protonet", "amortized_pure"])
def test_each_strategy_is_valid_as_configured(strategy):
    assert config_problems(compose_train(f"strategy={strategy}")) == []


@pytest.mark.parametrize("strategy", ["amortized", "universal", "amortized_pure"])
def test_latent_strategies_take_the_transductive_batch_norm(strategy):
    assert config_problems(compose_train(f"strategy={strategy}", "strategy.batch_norm=batch")) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["model.lr_schedule=linear"],
            "model.lr_schedule='linear': must be one of constant, cosine",
        ),
        (
            ["model.lr_schedule=cosine", "trainer.max_steps=-1", "trainer.max_time=00:00:10:00"],
            "trainer.max_steps=-1: must be >= 1 with model.lr_schedule=cosine",
        ),
        (
            ["model.lr_schedule=cosine", "trainer.max_steps=100", "model.warmup_steps=100"],
            "model.warmup_steps=100: must be < trainer.max_steps=100",
        ),
    ],
    ids=["unknown schedule", "cosine without max_steps", "warm-up as long as the run"],
)
def test_learning_rate_schedules_are_checked(overrides, expected):
    problems = config_problems(compose_train(*overrides))
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["trainer.max_steps=-1"], "trainer.max_steps=-1: must be >= 1 with the pretraining's"),
        (
            ["trainer.max_steps=10", "pretrain.warmup_steps=10"],
            "pretrain.warmup_steps=10: must be < trainer.max_steps=10",
        ),
    ],
    ids=["unbounded", "warm-up as long as the run"],
)
def test_the_pretrainings_cosine_rate_needs_a_bounded_run(overrides, expected):
    """Refused before any work, naming trainer.max_steps (it once failed inside the scheduler
    after the data was loaded, naming model.lr_schedule, a key pretraining does not have)."""
    from leo_lightning.config.compose import compose_config

    problems = config_problems(compose_config("pretrain", overrides, hydra=False))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_warmup_without_cosine_needs_no_step_budget():
    overrides = ["model.warmup_steps=50", "trainer.max_steps=-1", "trainer.max_time=00:00:10:00"]
    assert config_problems(compose_train(*overrides)) == []


def test_episode_shape_is_checked_against_the_dataset_sizes():
    problems = config_problems(with_values({"data.k_shot": 10, "data.n_query": 15}))
    assert (
        "data.source.examples_per_class=20: must be >= data.k_shot + data.n_query = 25" in problems
    )


def test_all_problems_are_reported_at_once():
    assert len(config_problems(with_values({"data.n_way": 1, "model.lr": -1.0}))) == 2


def test_train_script_exits_2_before_any_work(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "data.n_way=1", "model.lr=-1"],
        env={
            "LEO_OUTPUT_DIR": str(tmp_path / "out"),
            "LEO_DATA_DIR": str(tmp_path / "data"),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "data.n_way=1: must be >= 2" in proc.stderr and "model.lr=-1" in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was rendered or downloaded
    assert not (tmp_path / "out").exists()  # not even a run directory


def test_train_script_refuses_a_cosine_schedule_without_a_step_budget(tmp_path):
    from helpers import run_script

    overrides = ["model.lr_schedule=cosine", "trainer.max_steps=-1", "trainer.max_time=00:00:01:00"]
    proc = run_script("train.py", tmp_path, *overrides, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "trainer.max_steps=-1: must be >= 1 with model.lr_schedule=cosine" in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_train_script_rejects_an_infinite_learning_rate(tmp_path):
    from helpers import run_script

    proc = run_script("train.py", tmp_path, "model.lr=inf", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.lr=inf: must be a finite number" in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_last_checkpoint_interval_is_checked():
    cfg = copy.deepcopy(BASE)
    cfg.callbacks.last_checkpoint.every_n_steps = 0
    assert config_problems(cfg) == [
        "callbacks.last_checkpoint.every_n_steps=0: must be >= 1 (or null)"
    ]


@pytest.mark.parametrize("key", ["model.inner_steps", "model.finetune_steps"])
def test_a_step_count_too_large_to_fit_is_refused_saying_why(key):
    problems = config_problems(compose_train(f"{key}=100000"))
    assert any(p.startswith(f"{key}=100000: must be >= 0 and <= 1000") for p in problems)
    assert any("memory grows with the steps" in p for p in problems)
