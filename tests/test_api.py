"""leo_lightning.LEO: LEO's steps by name, on images, computing what evaluation computes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from helpers import TINY_CONV4, TINY_RUN

import leo_lightning as ll
from leo_lightning.data.episode import Episode

pytestmark = pytest.mark.slow  # one tiny training run for the module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model meta-trained by ll.train (in this process), 5-way 1-shot, d = 8, F = 8."""
    root = tmp_path_factory.mktemp("api")
    results = ll.train(
        [*TINY_RUN, *TINY_CONV4, f"paths.output_dir={root}/outputs", f"paths.data_dir={root}/data"]
    )
    return results["best_ckpt"]


@pytest.fixture
def leo(checkpoint):
    return ll.LEO.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def episodes(checkpoint) -> Episode:
    """The first batch of fixed test episodes, as leo-eval draws them: [B, N*K, 1, 28, 28]."""
    return next(iter(ll.LEO.from_checkpoint(checkpoint).datamodule().test_dataloader()))


def first_task(episodes: Episode) -> Episode:
    return Episode(*(t[0] for t in episodes))


def test_encode_task_gives_one_code_per_class(leo, episodes):
    task = first_task(episodes)
    assert leo.encode_task(task.support_x, task.support_y).shape == (5, 8)


def test_a_task_dimension_in_gives_a_task_dimension_out(leo, episodes):
    codes = leo.encode_task(episodes.support_x, episodes.support_y)  # [B, N, d]
    one = leo.encode_task(episodes.support_x[1], episodes.support_y[1])
    assert codes.shape == (episodes.support_x.shape[0], 5, 8)
    torch.testing.assert_close(codes[1], one)


def test_inner_update_changes_the_codes(leo, episodes):
    task = first_task(episodes)
    codes = leo.encode_task(task.support_x, task.support_y)
    adapted = leo.inner_update(task.support_x, task.support_y, codes)
    assert adapted.shape == codes.shape and not torch.allclose(adapted, codes)


def test_decode_to_params_names_the_classifier_weights(leo, episodes):
    task = first_task(episodes)
    params = leo.decode_to_params(leo.encode_task(task.support_x, task.support_y))
    assert list(params) == ["fc.weight"] and params["fc.weight"].shape == (5, 8)


def test_classifier_on_the_adapted_params_gives_the_evaluation_logits(leo, episodes):
    """The same logits as leo-eval's test step (LEOModule.adapt_and_score under Lightning's
    no_grad) for the same batch of episodes, step by step through the API."""
    x, y = episodes.support_x, episodes.support_y
    codes = leo.inner_update(x, y, leo.encode_task(x, y))
    params = leo.finetune_params(x, y, leo.decode_to_params(codes))
    logits = leo.classifier(episodes.query_x, params)

    module = leo.module.eval()
    with torch.no_grad():
        expected, _, _ = module.adapt_and_score(episodes)
    torch.testing.assert_close(logits, expected.query_logits)


def test_adapt_is_the_four_steps_in_one(leo, episodes):
    task = first_task(episodes)
    x, y = task.support_x, task.support_y
    stepwise = leo.finetune_params(
        x, y, leo.decode_to_params(leo.inner_update(x, y, leo.encode_task(x, y)))
    )
    torch.testing.assert_close(leo.adapt(x, y), stepwise)


def test_float_images_in_0_1_are_the_uint8_images(leo, episodes):
    task = first_task(episodes)
    as_float = task.support_x.float() / 255
    torch.testing.assert_close(
        leo.encode_task(as_float, task.support_y), leo.encode_task(task.support_x, task.support_y)
    )


def test_the_backbone_precision_is_resolved_for_the_device_on_first_use(leo, episodes):
    assert leo.net.precision is None  # a loaded checkpoint decides on the device it runs on
    leo.encode_task(episodes.support_x[0], episodes.support_y[0])
    assert leo.net.precision is not None


def test_meta_train_step_updates_the_weights_and_returns_a_finite_loss(leo, episodes):
    task = first_task(episodes)
    before = {k: v.clone() for k, v in leo.module.state_dict().items()}
    loss = leo.meta_train_step(*task[:4])
    assert math.isfinite(loss)
    changed = [k for k, v in leo.module.state_dict().items() if not torch.equal(v, before[k])]
    assert "net.decoder.linear.weight" in changed and "net.inner_lr" in changed
    assert not leo.module.training  # back to evaluation mode for the adaptation steps


def test_meta_train_step_skips_a_non_finite_update_as_training_does(leo, episodes):
    with torch.no_grad():
        leo.net.finetune_lr.fill_(float("nan"))  # every query logit, so the loss, is NaN
    before = {k: v.clone() for k, v in leo.module.named_parameters()}
    loss = leo.meta_train_step(*first_task(episodes)[:4])
    assert math.isnan(loss)
    assert int(leo.module.skipped_steps) == 1
    for name, value in leo.module.named_parameters():
        assert torch.equal(value, before[name]) or name == "net.finetune_lr", name


def test_loading_a_checkpoint_leaves_the_callers_random_state_alone(checkpoint):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ll.LEO.from_checkpoint(checkpoint)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda leo, t: leo.encode_task(t.support_x[..., :20], t.support_y), "input_shape"),
        (lambda leo, t: leo.encode_task(t.support_x.float(), t.support_y), "[0, 1]"),
        (lambda leo, t: leo.encode_task(t.support_x, t.support_y[:-1]), "support_y (4,)"),
        (lambda leo, t: leo.encode_task(t.support_x, t.support_y.float()), "integer labels"),
        (
            lambda leo, t: leo.encode_task(t.support_x[:4], torch.tensor([0, 1, 2, 4])),
            "class(es) [3]",
        ),
        (lambda leo, t: leo.inner_update(t.support_x, t.support_y, torch.zeros(3, 8)), "5 classes"),
        (lambda leo, t: leo.classifier(t.query_x, {"weight": torch.zeros(5, 8)}), "fc.weight"),
        (lambda leo, t: leo.meta_train_step(*t[:3], t.query_y + 5), "query_y"),
    ],
)
def test_bad_inputs_name_the_argument_and_what_was_expected(leo, episodes, call, message):
    task = first_task(episodes)
    with pytest.raises((ValueError, TypeError, KeyError), match=re.escape(message)):
        call(leo, task)
