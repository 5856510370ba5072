"""The optional switches of issue #16 as a user meets them: command-line spellings, values and
strategies checked before any work, the strategies that use them, checkpoints, the research
API, and a real training run per switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from helpers import (
    TINY_CONV4,
    quiet_trainer,
    random_episode,
    random_image_datamodule,
    run_script,
    tiny_module,
)
from test_config import compose_train
from test_debug_fast import QUICK

import leo_lightning as ll
from leo_lightning.config.validation import config_problems
from leo_lightning.errors import CheckpointError, ConfigError
from leo_lightning.training.checkpoints import check_compatible, read_checkpoint
from leo_lightning.training.module import LEOModule

# Each switch alone, as spelled on the command line.
SWITCHES = {
    "relation_attention": ["model.relation=attention"],
    "relation_rounds": ["model.relation_rounds=2"],
    "per_step_rates": ["model.per_step_rates=true"],
    "decoder_task_conditioned": ["model.decoder=task_conditioned"],
    "decoder_mixture": ["model.decoder=mixture"],
}
ALL_ON = [
    "model.relation=attention",
    "model.relation_rounds=2",
    "model.per_step_rates=true",
    "model.decoder=mixture",
    "model.decoder_experts=3",
]


def all_on(decoder: str = "mixture") -> dict:
    """Every switch on, as LEOModule keyword arguments."""
    return dict(
        relation="attention",
        relation_rounds=2,
        per_step_rates=True,
        decoder=decoder,
        decoder_experts=3 if decoder == "mixture" else 4,
    )


# -- configuration -------------------------------------------------------------------------------


def built_from_config(*overrides: str) -> LEOModule:
    """The module as leo-train builds it from the composed config."""
    from hydra.utils import instantiate

    cfg = compose_train(*overrides, "model.backbone.channels=8", "model.latent_dim=8")
    return instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False)


def test_every_switch_set_in_the_config_reaches_the_built_modules():
    """A switch that composed and validated but was dropped on the way to the network would
    pass every check above: look at what was built."""
    from leo_lightning.models import AttentionRelation, MixtureDecoder, RelationRounds

    module = built_from_config(*ALL_ON)
    relation = module.strategy.relation
    assert isinstance(relation, RelationRounds) and len(relation.refine) == 1  # 2 rounds
    assert isinstance(relation.final, AttentionRelation)
    assert all(isinstance(block, AttentionRelation) for block in relation.refine)
    assert isinstance(module.net.decoder, MixtureDecoder) and module.net.decoder.experts == 3
    steps = module.hparams.inner_steps, module.hparams.finetune_steps
    assert module.net.inner_lr.shape == (steps[0], 8)  # a rate vector per latent step
    assert module.net.finetune_lr.shape == (steps[1], module.net.feature_dim)


def test_with_every_switch_off_the_paper_s_modules_are_built():
    from leo_lightning.models import Decoder, RelationNetwork

    module = built_from_config()
    assert type(module.strategy.relation) is RelationNetwork
    assert type(module.net.decoder) is Decoder
    assert module.net.inner_lr.shape == (8,) and module.net.finetune_lr.ndim == 1


@pytest.mark.parametrize("overrides", SWITCHES.values(), ids=SWITCHES)
def test_each_switch_composes_as_spelled_and_is_valid(overrides):
    cfg = compose_train(*overrides)
    key, value = overrides[0].split("=")
    assert str(cfg.model[key.split(".")[1]]).lower() == value
    assert config_problems(cfg) == []


def test_every_switch_is_off_by_default():
    model = compose_train().model
    assert (model.relation, model.relation_rounds, model.per_step_rates) == ("pairwise", 1, False)
    assert (model.decoder, model.decoder_experts) == ("linear", 4)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.relation=transformer"], "model.relation='transformer': must be one of pairwise, "),
        (["model.relation_rounds=0"], "model.relation_rounds=0: must be >= 1"),
        (["model.decoder=film"], "model.decoder='film': must be one of linear, task_conditioned, "),
        (
            ["model.decoder=mixture", "model.decoder_experts=1"],
            "model.decoder_experts=1: must be >= 2",
        ),
    ],
)
def test_an_invalid_switch_value_is_reported_once_naming_key_and_allowed_values(
    overrides, expected
):
    problems = config_problems(compose_train(*overrides))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


# Per strategy, the switches it has no use for.
UNUSED = {
    "universal": ["model.relation=attention", "model.relation_rounds=2"],
    "amortized_pure": ["model.per_step_rates=true"],
    "maml": ALL_ON,
    "fomaml": ALL_ON,
    "meta_sgd": ALL_ON,
    "protonet": ALL_ON,
    "per_task": ALL_ON,
    "nearest_centroid": ALL_ON,
    "logistic_regression": ALL_ON,
}


@pytest.mark.parametrize("strategy", UNUSED)
def test_switches_a_strategy_does_not_use_are_refused_naming_key_and_strategy(strategy):
    problems = config_problems(compose_train(f"strategy={strategy}", *UNUSED[strategy]))
    for override in UNUSED[strategy]:
        key = override.split("=")[0]
        assert any(
            p.startswith(f"{key}=") and f"has no effect with strategy={strategy}" in p
            for p in problems
        ), (key, problems)
    assert len(problems) == len(UNUSED[strategy])


@pytest.mark.parametrize(
    ("strategy", "overrides"),
    [
        ("amortized", ALL_ON),
        ("universal", ["model.per_step_rates=true", *ALL_ON[3:]]),
        ("amortized_pure", [*ALL_ON[:2], *ALL_ON[3:]]),
    ],
)
def test_the_switches_a_strategy_uses_are_valid_together(strategy, overrides):
    assert config_problems(compose_train(f"strategy={strategy}", *overrides)) == []


def test_decoder_experts_without_the_mixture_decoder_is_refused():
    problems = config_problems(compose_train("model.decoder_experts=8"))
    assert problems == [
        "model.decoder_experts=8: only used with model.decoder=mixture (model.decoder='linear')"
    ]


def test_per_step_rates_without_any_step_is_refused():
    cfg = compose_train(
        "model.per_step_rates=true", "model.inner_steps=0", "model.finetune_steps=0"
    )
    assert [p.split(":")[0] for p in config_problems(cfg)] == ["model.per_step_rates=True"]


def test_a_module_built_from_python_refuses_a_switch_its_strategy_ignores():
    with pytest.raises(
        ConfigError, match="model.decoder='mixture': has no effect with strategy=maml"
    ):
        tiny_module(strategy={"_target_": "leo_lightning.strategies.MAML"}, decoder="mixture")


@pytest.mark.slow
def test_train_script_exits_2_before_any_work_naming_value_key_and_strategy(tmp_path):
    proc = run_script(
        "train.py",
        tmp_path,
        "strategy=maml",
        "model.relation=transformer",
        "model.decoder=mixture",
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.relation='transformer': must be one of pairwise, attention" in proc.stderr
    assert "model.decoder='mixture': has no effect with strategy=maml" in proc.stderr
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "data").exists()


# -- strategies ----------------------------------------------------------------------------------

UNIVERSAL = {"_target_": "leo_lightning.strategies.Universal"}
PURE = {"_target_": "leo_lightning.strategies.AmortizedPure"}


@pytest.mark.parametrize(
    ("strategy", "switches"),
    [
        (None, all_on("task_conditioned")),
        (None, all_on("mixture")),
        (UNIVERSAL, dict(per_step_rates=True, decoder="task_conditioned")),
        (UNIVERSAL, dict(per_step_rates=True, decoder="mixture")),
        (PURE, dict(relation="attention", relation_rounds=2, decoder="mixture")),
    ],
    ids=["amortized-film", "amortized-mixture", "universal-film", "universal-mix", "pure"],
)
def test_the_meta_gradient_reaches_every_parameter_with_the_switches_on(strategy, switches):
    steps = {"inner_steps": 0, "finetune_steps": 0} if strategy is PURE else {}
    module = tiny_module(**({"strategy": strategy} if strategy else {}), **steps, **switches)
    module.train()
    episode = random_episode()
    module.meta_loss(module(episode), episode.query_y)["loss"].backward()
    for name, p in module.named_parameters():
        if steps and name.endswith("_lr"):
            continue  # amortized_pure takes no steps: its rates are unused
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# -- checkpoints and the research API ------------------------------------------------------------


def eval_logits(module, episode):
    module.eval()
    with torch.enable_grad():
        return module(episode).query_logits


@pytest.mark.parametrize("decoder", ["task_conditioned", "mixture"])
def test_a_model_with_every_switch_on_survives_a_checkpoint_round_trip(tmp_path, decoder):
    module = tiny_module(**all_on(decoder))
    module.run_config = {"seed": 0}
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    conditioning = "film" if decoder == "task_conditioned" else "gate"
    assert getattr(module.net.decoder, conditioning).weight.abs().sum() > 0  # moved from zero
    path = tmp_path / "a.ckpt"
    trainer.save_checkpoint(path)

    episode = random_episode()
    expected = eval_logits(module, episode)
    loaded = LEOModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(eval_logits(loaded, episode), expected, rtol=0, atol=0)
    api = ll.LEO.from_checkpoint(path)
    torch.testing.assert_close(eval_logits(api.module, episode), expected, rtol=0, atol=0)
    check_compatible(read_checkpoint(path), tiny_module(**all_on(decoder)), path)  # resumable


def test_a_resume_with_another_step_count_names_the_key(tmp_path):
    module = tiny_module(per_step_rates=True)
    path = tmp_path / "a.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "leo_lightning": {"config": {"seed": 1}},
        },
        path,
    )
    with pytest.raises(CheckpointError) as error:
        check_compatible(
            read_checkpoint(path), tiny_module(per_step_rates=True, inner_steps=3), path
        )
    assert "model.inner_steps: checkpoint 2, configured 3 (model.per_step_rates=true" in str(
        error.value
    )
    with pytest.raises(CheckpointError, match="model.per_step_rates: checkpoint True, configured"):
        check_compatible(read_checkpoint(path), tiny_module(), path)


def test_the_research_api_steps_give_the_evaluation_logits_with_every_switch_on():
    leo = ll.LEO([*TINY_CONV4, "model.inner_steps=2", "model.finetune_steps=2", *ALL_ON])
    episode = random_episode()
    x, y = episode.support_x, episode.support_y
    codes = leo.inner_update(x, y, leo.encode_task(x, y))
    params = leo.finetune_params(x, y, leo.decode_to_params(codes))
    logits = leo.classifier(episode.query_x, params)
    expected, _, _ = leo.module.eval().adapt_and_score(episode)
    torch.testing.assert_close(logits, expected.query_logits)


# -- training through the command ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One rendering of the glyphs for every run of this module."""
    return tmp_path_factory.mktemp("glyphs")


@pytest.mark.slow
@pytest.mark.parametrize("overrides", SWITCHES.values(), ids=SWITCHES)
def test_each_switch_alone_trains_and_tests_with_debug_fast(tmp_path, data_dir, overrides):
    proc = run_script("train.py", tmp_path, *QUICK, *overrides, LEO_DATA_DIR=str(data_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("runs/*/*")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["meta_train_steps"] == 2 and results["test/episodes"] == 2
    key, value = overrides[0].removeprefix("model.").split("=")
    assert f"{key}: {value}" in (run_dir / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_the_ablation_bench_runs_today_s_leo_and_a_switch_and_prints_json(tmp_path, data_dir):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ablations.py"),
            "--debug-fast",
            "--seeds=0",
            "--variants=leo,decoder_mixture",
            "--n-way=2",
            f"--out={tmp_path / 'bench'}",
            "data.image_size=16",
        ],
        env={**os.environ, "LEO_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # stdout is the JSON alone
    assert report["machine"]["cpu_count"] and report["experiment"] == "glyphs_5w1s"
    for variant in ("leo", "decoder_mixture"):
        assert report["variants"][variant]["returncode"] == 0
        assert report["variants"][variant]["tested"] == 1
        assert report["variants"][variant]["fit_seconds_mean"] > 0
        assert report["variants"][variant]["adapt_ms_per_task_mean"] > 0
    assert [job["label"] for job in report["jobs"]] == [
        "leo",
        "decoder_mixture: model.decoder=mixture",
    ]
    assert (tmp_path / "bench" / "compare.md").is_file()
