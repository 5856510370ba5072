"""The baselines beside LEO: MAML, FOMAML, Meta-SGD, ProtoNets and pure amortized LEO."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import random_episode, tiny_module
from torch import nn

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies import MAML, AmortizedPure, MetaSGD, ModelDims, ProtoNet

N, K, Q, IN, FEATURES = 3, 2, 2, 5, 4


def toy_net(first_order: bool = False) -> LEONet:
    """A linear 'backbone' on 5 numbers: features f = A x + c, no normalisation in MAML."""
    torch.manual_seed(0)
    return LEONet(
        backbone=nn.Linear(IN, FEATURES),
        input_shape=(IN,),
        latent_dim=2,
        inner_steps=1,
        inner_lr=1.0,
        finetune_steps=0,
        finetune_lr=1e-3,
        first_order=first_order,
        dropout=0.0,
        channels_last=False,
        backbone_autocast=None,
        deterministic=False,
        per_step_rates=False,
        decoder="linear",
        decoder_experts=2,
        compile_inner_loops=None,
        latent_step_bound=None,
    )


def toy_episode() -> Episode:
    g = torch.Generator().manual_seed(1)
    labels = lambda r: torch.arange(N).repeat_interleave(r)[None]  # noqa: E731
    return Episode(
        torch.randn(1, N * K, IN, generator=g),
        labels(K),
        torch.randn(1, N * Q, IN, generator=g),
        labels(Q),
    )


def hand_computed_query_logits(a, c, episode: Episode, lr: float, first_order: bool = False):
    """One SGD step of the mean support cross-entropy from a zero head, written out: softmax of
    zero logits is uniform, so grad_W = mean_s (1/N - y_s) f_s^T and grad_b = mean_s (1/N - y_s);
    the backbone's gradient passes through W = 0 and is zero."""
    support = episode.support_x[0] @ a.T + c  # [N*K, F]
    residual = 1.0 / N - F.one_hot(episode.support_y[0], N).float()  # [N*K, N]
    grad_w = residual.T @ support / len(support)  # [N, F]
    grad_b = residual.mean(0)
    if first_order:
        grad_w, grad_b = grad_w.detach(), grad_b.detach()
    w, b = -lr * grad_w, -lr * grad_b
    return (episode.query_x[0] @ a.T + c) @ w.T + b  # [N*Q, N]


@pytest.mark.parametrize("first_order", [False, True], ids=["maml", "fomaml"])
def test_maml_one_inner_step_and_its_meta_gradient_match_the_hand_computed_update(first_order):
    net, episode = toy_net().train(), toy_episode()
    strategy = MAML(ModelDims(FEATURES, 2, 0.0), sgd_steps=1, sgd_lr=0.7, first_order=first_order)
    logits = strategy(net, episode).query_logits[0]
    a, c = net.backbone.weight, net.backbone.bias
    expected = hand_computed_query_logits(a, c, episode, 0.7, first_order)
    torch.testing.assert_close(logits, expected)

    meta = torch.autograd.grad(F.cross_entropy(logits, episode.query_y[0]), [a, c])
    by_hand = torch.autograd.grad(F.cross_entropy(expected, episode.query_y[0]), [a, c])
    for got, want in zip(meta, by_hand):
        torch.testing.assert_close(got, want)


def test_second_order_and_first_order_meta_gradients_differ():
    grads = []
    for first_order in (False, True):
        net, episode = toy_net().train(), toy_episode()
        maml = MAML(ModelDims(FEATURES, 2, 0.0), sgd_steps=1, sgd_lr=0.7, first_order=first_order)
        logits = maml(net, episode).query_logits[0]
        loss = F.cross_entropy(logits, episode.query_y[0])
        grads.append(torch.autograd.grad(loss, net.backbone.weight)[0])
    assert not torch.allclose(*grads)


def test_maml_steps_after_the_first_adapt_the_backbone_and_lower_the_support_loss():
    net = toy_net()
    out = MAML(ModelDims(FEATURES, 2, 0.0), sgd_steps=4, sgd_lr=0.7)(net.eval(), toy_episode())
    losses = [float(loss) for loss in out.support_losses]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert losses[0] == pytest.approx(torch.log(torch.tensor(float(N))).item())  # zero head


def head_only(dims: ModelDims, steps: int, lr: float) -> MetaSGD:
    """MAML that adapts the head alone: Meta-SGD with every backbone rate at zero."""
    strategy = MetaSGD(dims, sgd_steps=steps, sgd_lr=lr)
    with torch.no_grad():
        for name, rate in strategy.learned_rates.items():
            if name.startswith("backbone"):
                rate.zero_()
    return strategy


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_adapts_the_backbone_from_its_second_step_on(steps):
    """The first step moves only the zero head (the backbone's gradient passes through zero
    weights); from the second step the backbone moves too, so MAML parts from a head-only
    adaptation there, and only there."""
    net, episode = toy_net().eval(), toy_episode()
    dims = ModelDims(
        FEATURES, 2, 0.0, tuple((n, tuple(p.shape)) for n, p in net.backbone.named_parameters())
    )
    maml = MAML(dims, sgd_steps=steps, sgd_lr=0.7)(net, episode).query_logits
    head = head_only(dims, steps, lr=0.7)(net, episode).query_logits
    assert torch.allclose(maml, head) == (steps == 1)


def test_inner_steps_leave_the_parameters_grads_untouched():
    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.MAML"})
    module(random_episode())
    assert all(p.grad is None for p in module.parameters())


def test_meta_sgd_learns_one_rate_per_parameter_value_and_per_head_feature():
    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.MetaSGD", "sgd_lr": 0.3})
    rates = module.strategy.learned_rates
    for name, p in module.net.backbone.named_parameters():
        assert rates["backbone__" + name.replace(".", "__")].shape == p.shape
    assert rates["head__weight"].shape == (1, module.net.feature_dim)
    assert all(torch.all(r == 0.3) for r in rates.values())
    out = module(random_episode())
    module.meta_loss(out, random_episode().query_y)["loss"].backward()
    assert all(r.grad is not None and r.grad.abs().sum() > 0 for r in rates.values())


def test_meta_sgd_with_every_rate_equal_is_maml():
    """Over 3 steps, where the backbone's rates matter (a first step moves only the head)."""
    net, episode = toy_net().train(), toy_episode()
    dims = ModelDims(
        FEATURES, 2, 0.0, tuple((n, tuple(p.shape)) for n, p in net.backbone.named_parameters())
    )
    maml = MAML(dims, sgd_steps=3, sgd_lr=0.7)(net, episode).query_logits
    meta_sgd = MetaSGD(dims, sgd_steps=3, sgd_lr=0.7)(net, episode).query_logits
    torch.testing.assert_close(meta_sgd, maml)


def test_protonet_logits_are_negative_squared_distances_to_the_class_means():
    net, episode = toy_net().eval(), toy_episode()
    logits = ProtoNet(ModelDims(FEATURES, 2, 0.0))(net, episode).query_logits[0]
    support = net.backbone(episode.support_x[0])
    query = net.backbone(episode.query_x[0])
    means = torch.stack([support[episode.support_y[0] == n].mean(0) for n in range(N)])
    expected = -((query[:, None] - means[None]) ** 2).sum(-1)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_amortized_pure_is_amortized_without_steps():
    pure = tiny_module(strategy={"_target_": "leo_lightning.strategies.AmortizedPure"}).eval()
    stepless = tiny_module(inner_steps=0, finetune_steps=0).eval()
    missing, unexpected = stepless.load_state_dict(pure.state_dict(), strict=False)
    assert not missing and unexpected == ["strategy.log_logit_scale"]  # its scale, 1 at init
    episode = random_episode()
    torch.testing.assert_close(pure(episode).query_logits, stepless(episode).query_logits)
    assert isinstance(pure.strategy, AmortizedPure)


def test_strategies_without_the_decoder_leave_it_out_of_the_meta_loss():
    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.ProtoNet"})
    episode = random_episode()
    terms = module.meta_loss(module(episode), episode.query_y)
    assert terms["orthogonality"] == 0 and terms["l2"] == 0
    terms["loss"].backward()
    assert module.net.decoder.linear.weight.grad is None
    assert all(p.grad is not None for p in module.net.backbone.parameters())


@pytest.mark.parametrize(
    ("strategy", "adapted"),
    [
        ({"_target_": "leo_lightning.strategies.Amortized"}, lambda f, bb: 5 * 8 + 5 * f),
        ({"_target_": "leo_lightning.strategies.AmortizedPure"}, lambda f, bb: 0),
        ({"_target_": "leo_lightning.strategies.ProtoNet"}, lambda f, bb: 0),
        ({"_target_": "leo_lightning.strategies.MAML"}, lambda f, bb: bb + 5 * f + 5),
        ({"_target_": "leo_lightning.strategies.MetaSGD"}, lambda f, bb: bb + 5 * f + 5),
    ],
    ids=["amortized", "amortized_pure", "protonet", "maml", "meta_sgd"],
)
def test_each_strategy_counts_the_numbers_it_adapts_per_task(strategy, adapted):
    module = tiny_module(strategy=strategy)
    backbone = sum(p.numel() for p in module.net.backbone.parameters())
    expected = adapted(module.net.feature_dim, backbone)
    assert module.strategy.adapted_parameters(module.net, 5) == expected


@pytest.mark.parametrize("training", [False, True], ids=["evaluation", "meta-training"])
def test_maml_batch_norm_modes_running_and_support_are_inductive_and_batch_is_not(training):
    episode = random_episode(b=1)
    fewer = episode._replace(query_x=episode.query_x[:, :4], query_y=episode.query_y[:, :4])
    modes = {"running": "running statistics", "support": "support statistics"}
    modes["batch"] = "batch statistics (transductive)"
    for mode, name in modes.items():
        inductive = mode == "support" or (mode == "running" and not training)
        target = {"_target_": "leo_lightning.strategies.MAML", "batch_norm": mode}
        module = tiny_module(strategy=target, dropout=0.0).train(training)
        buffers = {k: v.clone() for k, v in module.net.backbone.named_buffers()}
        all_queries, first_four = module(episode).query_logits[0, :4], module(fewer).query_logits[0]
        assert torch.allclose(all_queries, first_four, atol=1e-5) == inductive, mode
        assert module.strategy.batch_norm_mode(module.net) == name
        if not training:  # evaluation leaves no trace in the running statistics
            for buffer, value in module.net.backbone.named_buffers():
                assert torch.equal(value, buffers[buffer]), buffer


def test_a_bad_batch_norm_mode_names_the_key():
    with pytest.raises(ValueError, match="strategy.batch_norm='always'"):
        MAML(ModelDims(FEATURES, 2, 0.0), batch_norm="always")
