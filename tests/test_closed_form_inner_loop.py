"""The inner loops write their gradients in closed form (models/support.py, the decoders' vjp,
draw_gaussian_vjp). They must compute what the autograd formulation computed: the reference
below is the inner loop as it was written before, a torch.autograd.grad call with create_graph
per step, fed the same random numbers, and the tests pin query logits and every parameter's
meta-gradient to it in fp32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from leo_lightning.data.episode import Episode
from leo_lightning.models.distributions import (
    draw_gaussian,
    draw_gaussian_vjp,
    weight_std_offset,
)
from leo_lightning.models.shots import shot_weights
from leo_lightning.strategies.base import n_way_of
from leo_lightning.training.module import LEOModule

FEATURES = 24  # F: a feature-space model (identity backbone), as LEO on embeddings
BATCH, WAYS, SHOTS, QUERIES = 3, 4, 2, 3


def feature_module(**settings) -> LEOModule:
    torch.manual_seed(0)
    return LEOModule(
        backbone={"_target_": "leo_lightning.models.Flatten"},
        strategy={"_target_": "leo_lightning.strategies.Amortized"},
        input_shape=[FEATURES],
        latent_dim=6,
        inner_steps=3,
        finetune_steps=2,
        finetune_lr=0.1,
        channels_last=False,
        backbone_autocast=None,
        **settings,
    )


def feature_episode(shots=(SHOTS,) * WAYS):
    """Features and labels of BATCH tasks; `shots` per class (unequal shots allowed)."""
    g = torch.Generator().manual_seed(5)
    support_y = torch.cat([torch.full((k,), c) for c, k in enumerate(shots)]).repeat(BATCH, 1)
    query_y = torch.arange(WAYS).repeat_interleave(QUERIES).repeat(BATCH, 1)
    support_x = torch.randn(BATCH, support_y.shape[1], FEATURES, generator=g)
    query_x = torch.randn(BATCH, query_y.shape[1], FEATURES, generator=g)
    return Episode(support_x, support_y, query_x, query_y)


def reference_descend(net, state, to_weights, rate, steps, features, labels, masks):
    """The inner loop as it was: autograd's gradient of the weighted support cross-entropy."""
    n_way = state.shape[-2]
    omega = shot_weights(labels, n_way)
    keep_graph = net.training and not net.first_order
    for step in range(steps):
        if not state.requires_grad:
            state = state.requires_grad_()
        inputs = features if masks is None else features * masks[step]
        logits = inputs @ to_weights(state, step).transpose(1, 2)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
        loss = (losses * omega.flatten()).sum()
        (grad,) = torch.autograd.grad(loss, state, create_graph=keep_graph)
        step_rate = rate[step] if rate.ndim == 2 else rate
        state = state - (step_rate / (labels.shape[1] / n_way)) * grad
    return state


def reference_logits(module: LEOModule, episode):
    """Query logits of strategy=amortized with autograd inner loops, drawing the random numbers
    in the order the module draws them."""
    net, strategy = module.net, module.strategy
    n_way = n_way_of(episode)
    support, query = strategy.episode_features(net, episode)
    z0, _ = strategy.initial_latents(net, support, episode.support_y, n_way)
    steps, offset = net.inner_steps, weight_std_offset(net.feature_dim, n_way)
    noise = torch.randn(steps, BATCH, n_way, FEATURES) if net.sampling and steps else None

    def decoded(z, step):
        eps = None if noise is None else noise[step]
        return draw_gaussian(net.decoder(z), eps is not None, offset, eps)

    masks = net.dropout.masks((steps, *support.shape), support)
    z = reference_descend(
        net, z0, decoded, net._rates("inner_lr", "inner_steps"), steps, support,
        episode.support_y, masks,
    )  # fmt: skip
    weights = net.decode(z)
    masks = net.dropout.masks((net.finetune_steps, *support.shape), support)
    weights = reference_descend(
        net, weights, lambda w, step: w, net._rates("finetune_lr", "finetune_steps"),
        net.finetune_steps, support, episode.support_y, masks,
    )  # fmt: skip
    return net.logits(query, weights)


def logits_and_grads(module, episode, logits_of, seed=7):
    """Query logits and the meta-gradient of every parameter of a summed query loss."""
    module.zero_grad()
    torch.manual_seed(seed)
    logits = logits_of(module, episode)
    F.cross_entropy(logits.flatten(0, 1), episode.query_y.flatten()).backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def closed_form_logits(module, episode):
    return module.strategy(module.net, episode).query_logits


def assert_same_step(module, episode):
    new_logits, new_grads = logits_and_grads(module, episode, closed_form_logits)
    old_logits, old_grads = logits_and_grads(module, episode, reference_logits)
    torch.testing.assert_close(new_logits, old_logits, rtol=1e-5, atol=1e-5)
    assert new_grads.keys() == old_grads.keys()
    for name in old_grads:
        torch.testing.assert_close(new_grads[name], old_grads[name], rtol=1e-4, atol=1e-6)


def test_the_meta_training_step_has_the_logits_and_gradients_of_autograd_inner_loops():
    """Sampled latents and weights, dropout, second order: the paper's LEO in meta-training."""
    module = feature_module(dropout=0.3).train()
    assert_same_step(module, feature_episode())


@pytest.mark.parametrize("decoder", ["task_conditioned", "mixture"])
def test_every_decoder_gives_the_autograd_step(decoder):
    module = feature_module(decoder=decoder, dropout=0.2).train()
    if decoder == "task_conditioned":  # zero at init; a random one tests the task path too
        torch.nn.init.normal_(module.net.decoder.film.weight, std=0.3)
    else:
        torch.nn.init.normal_(module.net.decoder.gate.weight, std=0.3)
    assert_same_step(module, feature_episode())


def test_per_step_rates_give_the_autograd_step():
    module = feature_module(per_step_rates=True).train()
    with torch.no_grad():
        module.net.inner_lr.mul_(torch.rand_like(module.net.inner_lr) + 0.5)
    assert_same_step(module, feature_episode())


def test_first_order_gives_the_autograd_step():
    assert_same_step(feature_module(first_order=True).train(), feature_episode())


def test_unequal_shots_give_the_autograd_step():
    assert_same_step(feature_module().train(), feature_episode(shots=(1, 3, 2, 2)))


def test_evaluation_gives_the_autograd_logits_without_a_graph():
    module = feature_module().eval()
    episode = feature_episode()
    with torch.enable_grad():
        new = closed_form_logits(module, episode)
        old = reference_logits(module, episode)
    torch.testing.assert_close(new, old.detach(), rtol=1e-5, atol=1e-5)
    codes = torch.zeros(BATCH, WAYS, 6)
    z, _ = module.net.adapt_latents(codes, episode.support_x, episode.support_y)
    assert z.grad_fn is None  # the steps ran without recording a graph


@pytest.mark.parametrize("decoder", ["linear", "task_conditioned", "mixture"])
def test_each_decoders_vjp_is_its_autograd_vjp(decoder):
    module = feature_module(decoder=decoder)
    net = module.net
    for name, weight in net.decoder.named_parameters():
        if "film" in name or "gate" in name:
            torch.nn.init.normal_(weight, std=0.5)
    z = torch.randn(BATCH, WAYS, 6, requires_grad=True)
    cotangent = torch.randn(BATCH, WAYS, 2 * FEATURES)
    (expected,) = torch.autograd.grad(net.decoder(z), z, cotangent)
    torch.testing.assert_close(net.decoder.vjp(z, cotangent), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sampled", [True, False])
def test_the_sampling_vjp_is_its_autograd_vjp_at_and_above_the_std_floor(sampled):
    params = torch.randn(BATCH, WAYS, 2 * FEATURES) * 2  # many raw scales below the floor
    params.requires_grad_()
    noise = torch.randn(BATCH, WAYS, FEATURES) if sampled else None
    offset = weight_std_offset(FEATURES, WAYS)
    cotangent = torch.randn(BATCH, WAYS, FEATURES)
    sample = draw_gaussian(params, sampled, offset, noise)
    (expected,) = torch.autograd.grad(sample, params, cotangent)
    got = draw_gaussian_vjp(params.detach(), noise, offset, cotangent)
    torch.testing.assert_close(got, expected)
