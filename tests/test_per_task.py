"""`per_task` is fair and reproducible: a task's result depends on that task alone."""

from __future__ import annotations

import pytest
import torch
from helpers import quiet_trainer, random_episode, random_image_datamodule, tiny_module

from leo_lightning.data.episode import Episode

PER_TASK = {"_target_": "leo_lightning.strategies.PerTask"}


def per_task_module():
    return tiny_module(strategy={**PER_TASK, "adam_steps": 3}, inner_steps=0).eval()


def indexed_episode(b: int, first_index: int = 0, seed: int = 0) -> Episode:
    episode = random_episode(b=b, seed=seed)
    return episode._replace(index=torch.arange(first_index, first_index + b))


def task(episode: Episode, i: int) -> Episode:
    return Episode(*(t[i : i + 1] for t in episode))


def test_a_task_gives_the_same_logits_alone_as_in_a_batch():
    module, batch = per_task_module(), indexed_episode(4, first_index=10)
    together = module(batch).query_logits
    for i in (3, 0, 2, 1):  # in another order, after other calls
        alone = module(task(batch, i)).query_logits[0]
        torch.testing.assert_close(alone, together[i], atol=1e-5, rtol=1e-4)


def test_the_episode_index_seeds_the_task():
    module, episode = per_task_module(), indexed_episode(1)
    renumbered = episode._replace(index=torch.tensor([7]))
    assert not torch.allclose(module(episode).query_logits, module(renumbered).query_logits)


def test_the_global_rng_is_left_unchanged():
    module, episode = per_task_module(), indexed_episode(2)
    before = torch.get_rng_state()
    module(episode)
    assert torch.equal(torch.get_rng_state(), before)


def test_each_query_is_classified_independently_of_the_other_queries():
    module, episode = per_task_module(), indexed_episode(1)
    fewer = episode._replace(query_x=episode.query_x[:, :4], query_y=episode.query_y[:, :4])
    all_queries = module(episode).query_logits[0, :4]
    torch.testing.assert_close(module(fewer).query_logits[0], all_queries, atol=1e-5, rtol=1e-4)


def test_it_reports_support_statistics_and_every_weight_as_adapted():
    module = per_task_module()
    assert module.strategy.batch_norm_mode(module.net) == "support statistics"
    backbone = sum(p.numel() for p in module.net.backbone.parameters())
    d, f = 8, module.net.feature_dim
    assert module.strategy.adapted_parameters(module.net, 5) == backbone + 2 * f * d + 5 * 2 * d


@pytest.mark.slow
def test_test_accuracy_is_identical_for_eval_batch_size_1_and_8():
    def test_accuracy(eval_batch_size):
        datamodule = random_image_datamodule(test_episodes=8, eval_batch_size=eval_batch_size)
        (metrics,) = quiet_trainer().test(per_task_module(), datamodule=datamodule, verbose=False)
        return metrics["test/acc"]

    assert test_accuracy(1) == test_accuracy(8)
