"""Support sets with unequal shots per class: every class counts the same in adaptation.

A class with more support images must not pull the queries of the other classes to itself:
the support loss and the relation network's average over partners weight each class equally,
so repeating a support image changes nothing, and with equal shots nothing changed at all.
"""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_CONV4, TINY_RUN, tiny_module, train_checkpoint

from leo_lightning.data.episode import Episode
from leo_lightning.data.glyphs import render_glyphs
from leo_lightning.models.shots import shot_weights
from leo_lightning.training.module import LEOModule

N_WAY, QUERIES = 3, 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> LEOModule:
    """A 5-way 1-shot model trained for a few seconds on glyphs, in evaluation mode."""
    tmp_path = tmp_path_factory.mktemp("unequal")
    fp32 = "model.backbone_autocast=null"  # bf16 kernels may round differently per batch size
    quick = ["trainer.max_steps=30", "trainer.limit_val_batches=0", "test=false"]
    path = train_checkpoint(tmp_path, "run", *TINY_RUN, *TINY_CONV4, fp32, *quick)
    module = LEOModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    return module.eval()


@pytest.fixture(scope="module")
def glyphs() -> torch.Tensor:
    """[3 classes, 3 + 20 drawings, 1, 28, 28]: up to 3 support images, then 20 queries each."""
    return render_glyphs(N_WAY, 3 + QUERIES, 28, seed=11)


def episode(glyphs: torch.Tensor, support: list[list[int]]) -> Episode:
    """Class c's support is glyphs[c, support[c]]; the queries are 20 further drawings each."""
    support_x = torch.cat([glyphs[c, indices] for c, indices in enumerate(support)])
    support_y = torch.tensor([c for c, indices in enumerate(support) for _ in indices])
    query_x = glyphs[:, 3:].flatten(0, 1)
    query_y = torch.arange(N_WAY).repeat_interleave(QUERIES)
    return Episode(support_x[None], support_y[None], query_x[None], query_y[None])


def logits(module, episode: Episode) -> torch.Tensor:
    with torch.enable_grad():  # the inner loops differentiate, also at evaluation
        return module(episode).query_logits[0].detach()


@pytest.mark.slow  # trains a model for a few seconds
def test_a_repeated_support_image_changes_nothing(trained, glyphs):
    one_copy = logits(trained, episode(glyphs, [[0], [0], [0]]))
    three_copies = logits(trained, episode(glyphs, [[0, 0, 0], [0], [0]]))
    torch.testing.assert_close(three_copies, one_copy, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_one_shot_classes_are_not_swamped_by_a_three_shot_class(trained, glyphs):
    """With support 3/1/1, the 1-shot classes' queries go to their own class about as often as
    with 1/1/1: a class with more shots gains no pull of its own."""
    predictions = logits(trained, episode(glyphs, [[0, 1, 2], [0], [0]])).argmax(-1)
    balanced = logits(trained, episode(glyphs, [[0], [0], [0]])).argmax(-1)
    one_shot_queries = slice(QUERIES, 3 * QUERIES)
    to_class_0 = (predictions[one_shot_queries] == 0).sum().item()
    to_class_0_balanced = (balanced[one_shot_queries] == 0).sum().item()
    assert to_class_0 <= to_class_0_balanced + 4, (to_class_0, to_class_0_balanced)
    assert set(predictions.tolist()) == {0, 1, 2}


def test_per_task_strategy_weights_classes_equally():
    """The per-task strategy's support NLL: three copies of an example weigh as much as one.
    (On features with the identity backbone: a Conv4's batch statistics would see the copies.)"""
    module = tiny_module(
        backbone={"_target_": "leo_lightning.models.Flatten"},
        strategy={"_target_": "leo_lightning.strategies.PerTask"},
        input_shape=[16],
        inner_steps=5,
    ).eval()
    g = torch.Generator().manual_seed(3)
    support_x, query_x = torch.randn(1, 3, 16, generator=g), torch.randn(1, 6, 16, generator=g)
    support_y, query_y = torch.tensor([[0, 1, 2]]), torch.tensor([[0, 0, 1, 1, 2, 2]])
    repeat = [0, 0, 0, 1, 2]
    outputs = []
    for ep in (
        Episode(support_x, support_y, query_x, query_y),
        Episode(support_x[:, repeat], support_y[:, repeat], query_x, query_y),
    ):
        module.strategy.tasks_seen = 0  # the same fresh weights for both
        torch.manual_seed(0)  # the same samples of z
        outputs.append(logits(module, ep))
    # Adam's normalised steps amplify float rounding to ~1e-4; unweighted, the copies move the
    # logits by ~4e-2.
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-3, atol=1e-3)


def test_with_equal_shots_every_example_weighs_exactly_one():
    labels = torch.tensor([[2, 0, 1, 1, 0, 2], [0, 0, 1, 1, 2, 2]])
    assert torch.equal(shot_weights(labels, 3), torch.ones(2, 6))


def test_each_class_weighs_the_mean_shot_count():
    weights = shot_weights(torch.tensor([[0, 0, 0, 1, 2]]), 3)  # 5 / 3 shots per class
    torch.testing.assert_close(weights, torch.tensor([[5 / 9, 5 / 9, 5 / 9, 5 / 3, 5 / 3]]))
