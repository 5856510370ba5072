"""`strategy.batch_norm` of the latent strategies (amortized, universal, amortized_pure):
running statistics at evaluation by default, or each episode's own statistics (transductive)."""

from __future__ import annotations

import pytest
import torch
from helpers import PoolSource, quiet_trainer, random_episode, tiny_module

from leo_lightning.data import ClassPool, EpisodicDataModule
from leo_lightning.data.episode import Episode
from leo_lightning.errors import ConfigError
from leo_lightning.jobs.eval import use_batch_norm
from leo_lightning.strategies import Amortized, ModelDims

LATENT = {
    "amortized": "leo_lightning.strategies.Amortized",
    "universal": "leo_lightning.strategies.Universal",
    "amortized_pure": "leo_lightning.strategies.AmortizedPure",
}


def module_with(strategy: str, batch_norm: str, training: bool = False):
    target = {"_target_": LATENT[strategy], "batch_norm": batch_norm}
    return tiny_module(strategy=target, dropout=0.0).train(training)


def logits(module, episode):
    return module(episode).query_logits.detach()


@pytest.mark.parametrize("strategy", LATENT)
def test_batch_mode_normalises_each_episode_by_itself_not_by_its_evaluation_batch(strategy):
    module = module_with(strategy, "batch")
    episodes = random_episode(b=3)
    together = logits(module, episodes)
    one = lambda i: Episode(*(t[i : i + 1] for t in episodes[:4]))  # noqa: E731
    alone = torch.cat([logits(module, one(i)) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize("strategy", LATENT)
def test_batch_mode_is_transductive_and_running_mode_is_not(strategy):
    episode = random_episode(b=1)
    fewer = episode._replace(query_x=episode.query_x[:, :4], query_y=episode.query_y[:, :4])
    for mode, inductive in (("running", True), ("batch", False)):
        module = module_with(strategy, mode)
        all_queries, first_four = logits(module, episode)[0, :4], logits(module, fewer)[0]
        assert torch.allclose(all_queries, first_four, atol=1e-5) == inductive, mode


@pytest.mark.parametrize("strategy", LATENT)
def test_results_name_the_batch_norm_mode(strategy):
    modes = {m: module_with(strategy, m).strategy for m in ("running", "batch")}
    net = tiny_module().net
    assert modes["running"].batch_norm_mode(net) == "running statistics"
    assert modes["batch"].batch_norm_mode(net) == "batch statistics (transductive)"


def test_a_transductive_evaluation_leaves_the_running_statistics_untouched():
    module = module_with("amortized", "batch")
    before = {k: v.clone() for k, v in module.net.backbone.named_buffers()}
    logits(module, random_episode(b=2))
    after = dict(module.net.backbone.named_buffers())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_meta_training_is_the_same_in_both_modes():
    episode = random_episode(b=2)
    runs = {}
    for mode in ("running", "batch"):
        torch.manual_seed(0)  # the same init, dropout masks and latent samples
        module = module_with("amortized", mode, training=True)
        runs[mode] = (logits(module, episode), module.net.backbone.state_dict())
    assert torch.equal(runs["running"][0], runs["batch"][0])
    for name, value in runs["running"][1].items():  # the running statistics gathered too
        assert torch.equal(value, runs["batch"][1][name]), name


def shaded_datamodule(eval_batch_size: int) -> EpisodicDataModule:
    """Test classes from dark to bright (class c: values below 24 (c + 1)), so that 5-way
    episodes drawn from 10 classes differ in their statistics, and no two episodes of an
    evaluation batch are normalised alike."""
    g = torch.Generator().manual_seed(0)
    ceiling = 24 * torch.arange(1, 11).view(10, 1, 1, 1, 1)
    images = (torch.rand(10, 6, 1, 28, 28, generator=g) * ceiling).to(torch.uint8)
    pool = ClassPool.from_grouped(images)
    pools = {"train": pool, "val": pool, "test": pool}
    return EpisodicDataModule(
        PoolSource(pools), image_size=28, channels=1, n_way=5, k_shot=1, n_query=3,
        eval_batch_size=eval_batch_size, val_episodes=1, test_episodes=12,
    )  # fmt: skip


def test_a_test_result_does_not_depend_on_the_evaluation_batch_size():
    module = module_with("amortized", "batch")
    accuracy = {}
    for eval_batch_size in (1, 4):
        data = shaded_datamodule(eval_batch_size)
        (metrics,) = quiet_trainer().test(module, datamodule=data, verbose=False)
        accuracy[eval_batch_size] = metrics["test/acc"]
    assert accuracy[1] == pytest.approx(accuracy[4], abs=1e-9)


def test_a_bad_mode_names_the_key():
    with pytest.raises(ValueError, match="strategy.batch_norm='support'"):
        Amortized(ModelDims(64, 8, 0.0), batch_norm="support")


def test_eval_switches_a_latent_checkpoint_to_batch_statistics():
    module = module_with("amortized", "running")
    use_batch_norm(module, "batch")
    assert module.strategy.batch_norm_mode(module.net) == "batch statistics (transductive)"
    use_batch_norm(module, None)  # null: the trained mode stays
    assert module.strategy.batch_norm == "batch"


def test_eval_refuses_to_switch_the_mode_of_maml_naming_the_key_and_the_strategy():
    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.MAML"})
    with pytest.raises(ConfigError, match="batch_norm=batch.*strategy is maml"):
        use_batch_norm(module, "batch")


def test_eval_refuses_a_mode_the_latent_strategies_do_not_have():
    with pytest.raises(ConfigError, match="batch_norm='support': must be one of running, batch"):
        use_batch_norm(module_with("amortized", "running"), "support")
