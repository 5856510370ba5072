"""model.latent_step_bound: each class code moves at most this far in one latent step, so LEO's
steps stay finite when its learned rates outgrow sharp (pretrained) features."""

from __future__ import annotations

import torch
from helpers import tiny_module
from test_config import compose_train

from leo_lightning.config.validation import config_problems


def adapted(bound: float | None, steps: int = 1, inner_lr: float = 50.0):
    """Codes before and after the latent steps of a tiny model on random support features."""
    torch.manual_seed(0)
    module = tiny_module(
        inner_steps=steps, inner_lr=inner_lr, latent_step_bound=bound, deterministic=True
    )
    net = module.net.eval()
    features = torch.nn.functional.normalize(torch.randn(2, 5, net.feature_dim), dim=-1)
    labels = torch.arange(5).repeat(2, 1)  # [B, N·K], 1-shot
    start = torch.randn(2, 5, net.latent_dim)
    codes, _ = net.adapt_latents(start, features, labels)
    return start, codes


def test_the_switch_is_off_by_default_and_composes_when_set():
    assert compose_train().model.latent_step_bound is None
    assert config_problems(compose_train("model.latent_step_bound=0.5")) == []


def test_a_bound_that_is_not_positive_is_refused_naming_the_key():
    problems = config_problems(compose_train("model.latent_step_bound=0"))
    assert "model.latent_step_bound=0.0: must be null or > 0" in problems


def test_a_strategy_without_latent_steps_refuses_the_bound():
    problems = config_problems(compose_train("strategy=maml", "model.latent_step_bound=0.5"))
    refused = "model.latent_step_bound=0.5: has no effect with strategy=maml"
    assert any(refused in problem for problem in problems)


def test_no_class_code_moves_further_than_the_bound_in_one_step():
    start, unbounded = adapted(None)
    assert (unbounded - start).norm(dim=-1).max() > 0.1  # the rate makes long steps
    start, bounded = adapted(0.1)
    assert (bounded - start).norm(dim=-1).max() <= 0.1 + 1e-6


def test_each_step_is_bounded_on_its_own():
    start, bounded = adapted(0.1, steps=3)
    assert 0.1 < (bounded - start).norm(dim=-1).max() <= 0.3 + 1e-6


def test_a_bound_no_step_reaches_changes_nothing():
    _, unbounded = adapted(None, steps=2, inner_lr=1.0)
    _, bounded = adapted(1e6, steps=2, inner_lr=1.0)
    assert torch.equal(bounded, unbounded)


def test_meta_training_differentiates_through_the_bounded_steps():
    torch.manual_seed(0)
    module = tiny_module(inner_lr=50.0, latent_step_bound=0.1)
    net = module.net.train()
    features = torch.nn.functional.normalize(torch.randn(2, 5, net.feature_dim), dim=-1)
    start = torch.randn(2, 5, net.latent_dim, requires_grad=True)
    codes, _ = net.adapt_latents(start, features, torch.arange(5).repeat(2, 1))
    codes.square().sum().backward()
    assert torch.isfinite(start.grad).all() and net.inner_lr.grad.abs().sum() > 0
