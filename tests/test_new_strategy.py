"""Adding a strategy is one module and one YAML file: a strategy defined outside the package,
named only by a YAML file in a config folder of the user's, trains by `strategy=<name>`, has its
settings checked from its own declaration, and its checkpoint evaluates."""

from __future__ import annotations

import textwrap

import pytest
from helpers import TINY_CONV4, TINY_RUN

import leo_lightning as ll
from leo_lightning.errors import CheckpointError, ConfigError

MODULE = '''
"""Cosine nearest centroid with a fixed temperature: a strategy of a user's own."""
import torch
import torch.nn.functional as F

from leo_lightning.strategies import Strategy, StrategySpec, Setting, Steps, TaskOutput

SPEC = StrategySpec(
    name="cosine_centroids",
    summary="queries scored by scaled cosine similarity to each class's mean feature",
    steps=Steps(None),
    settings={"temperature": Setting(10.0, "logit scale", check=lambda v: v > 0, expected="> 0")},
    why_not="it compares features to class means: no relation network, decoder or steps",
    fixed_batch_norm="class means of features normalised with running statistics",
)


class CosineCentroids(Strategy):
    spec = SPEC
    uses_decoder = False

    def __init__(self, dims, temperature=SPEC.settings["temperature"].default):
        super().__init__()
        self.check_settings(temperature=temperature)
        self.temperature = temperature

    def forward(self, net, episode):
        n_way = int(episode.support_y.amax()) + 1
        support, query = net.features(episode.support_x), net.features(episode.query_x)
        one_hot = F.one_hot(episode.support_y, n_way).float()  # [B, N*K, N]
        means = one_hot.transpose(1, 2) @ support / one_hot.sum(1).unsqueeze(-1)  # [B, N, F]
        logits = self.temperature * F.normalize(query, dim=-1) @ F.normalize(means, dim=-1).mT
        zero = logits.new_zeros(())
        return TaskOutput(query_logits=logits, kl=zero, encoder_penalty=zero)

    def adapted_parameters(self, net, n_way):
        return 0
'''

YAML = """
# @package _global_
# Cosine nearest centroid (my_strategies.py). A key listed here can be overridden on the
# command line; the spec checks every value.
strategy:
  _target_: my_strategies.CosineCentroids
  temperature: 10.0   # logit scale
model:
  inner_steps: 0
  finetune_steps: 0
"""


@pytest.fixture
def user_strategy(tmp_path, monkeypatch):
    """my_strategies.py on the path and conf/strategy/cosine_centroids.yaml: nothing else."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_strategies.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    (tmp_path / "conf" / "strategy").mkdir(parents=True)
    (tmp_path / "conf" / "strategy" / "cosine_centroids.yaml").write_text(YAML)
    return tmp_path / "conf"


def run_overrides(tmp_path, *extra):
    return [
        *TINY_RUN,
        *TINY_CONV4,
        f"paths.output_dir={tmp_path}/outputs",
        f"paths.data_dir={tmp_path}/data",
        "strategy=cosine_centroids",
        *extra,
    ]


@pytest.mark.slow
def test_a_strategy_of_ones_own_trains_tests_and_evaluates(tmp_path, user_strategy):
    results = ll.train(
        run_overrides(tmp_path, "strategy.temperature=5.0"), config_dir=user_strategy
    )
    assert results["strategy"] == "CosineCentroids" and results["meta_train_steps"] == 20
    assert 0 <= results["test/acc"] <= 1
    scored = ll.evaluate(
        results["best_ckpt"], [f"hydra.run.dir={tmp_path}/eval"], config_dir=user_strategy
    )
    assert scored["test/acc"] == pytest.approx(results["test/acc"])


def test_its_settings_are_checked_from_its_declaration(tmp_path, user_strategy):
    with pytest.raises(ConfigError, match="strategy.temperature=-1.0: must be > 0"):
        ll.train(run_overrides(tmp_path, "strategy.temperature=-1.0"), config_dir=user_strategy)
    with pytest.raises(ConfigError, match="strategy.temprature: not a setting.*temperature"):
        ll.train(run_overrides(tmp_path, "+strategy.temprature=1.0"), config_dir=user_strategy)


def test_the_step_counts_and_switches_it_ignores_are_refused(tmp_path, user_strategy):
    overrides = run_overrides(tmp_path, "model.inner_steps=3", "model.decoder=mixture")
    with pytest.raises(ConfigError) as error:
        ll.train(overrides, config_dir=user_strategy)
    message = str(error.value)
    assert "model.inner_steps=3: must be 0 with strategy=cosine_centroids" in message
    assert "model.decoder='mixture': has no effect with strategy=cosine_centroids" in message


@pytest.mark.slow
def test_its_checkpoint_is_refused_without_the_config_folder_that_names_it(tmp_path, user_strategy):
    results = ll.train(run_overrides(tmp_path, "test=false"), config_dir=user_strategy)
    with pytest.raises(CheckpointError, match="my_strategies.CosineCentroids"):
        ll.LEO.from_checkpoint(results["best_ckpt"])
    leo = ll.LEO.from_checkpoint(results["best_ckpt"], config_dir=user_strategy)
    assert type(leo.module.strategy).__name__ == "CosineCentroids"
