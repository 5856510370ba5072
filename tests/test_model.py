"""The LEO model as docs/algorithm.md states it, including the mistakes not to repeat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import random_episode, tiny_module

from leo_lightning.models.decoder import Decoder
from leo_lightning.models.distributions import sample_gaussian
from leo_lightning.models.relation import RelationNetwork
from leo_lightning.training.clipping import clip_per_tensor_
from leo_lightning.training.metrics import EpisodeAccuracy


def meta_gradients(module, episode, seed=0):
    torch.manual_seed(seed)
    module.train()
    module.zero_grad()
    out = module(episode)
    module.meta_loss(out, episode.query_y)["loss"].backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_meta_gradient_reaches_every_part_through_the_inner_loop():
    grads = meta_gradients(tiny_module(), random_episode())
    for part in (
        "net.backbone.",
        "net.decoder.",
        "strategy.encoder.",
        "strategy.relation.",
        "net.inner_lr",
        "net.finetune_lr",
    ):
        hits = [g for name, g in grads.items() if name.startswith(part)]
        assert hits and all(g.abs().sum() > 0 for g in hits), part


def test_first_and_second_order_meta_gradients_differ():
    second = tiny_module()
    first = tiny_module(first_order=True)
    first.load_state_dict(second.state_dict())
    g2, g1 = meta_gradients(second, random_episode()), meta_gradients(first, random_episode())
    assert set(g1) == set(g2)
    assert not torch.allclose(
        g1["strategy.encoder.linear.weight"], g2["strategy.encoder.linear.weight"]
    )
    assert g1["net.inner_lr"].abs().sum() > 0  # first order still learns the rates


def test_inner_loop_leaves_parameter_grads_untouched():
    module = tiny_module()
    module.train()
    module(random_episode())
    assert all(p.grad is None for p in module.parameters())


def test_orthogonality_penalty_is_over_latent_dimensions():
    decoder = Decoder(latent_dim=3, feature_dim=4)  # W_d is 3 x 8; nn.Linear stores 8 x 3
    with torch.no_grad():
        rows = torch.zeros(3, 8)
        rows[0, 0], rows[1, 1], rows[2, 2] = 2.0, 3.0, 0.5  # orthogonal latent-dimension rows
        decoder.linear.weight.copy_(rows.T)
    assert decoder.orthogonality_penalty() == 0  # the 8 x 8 version would not be zero
    with torch.no_grad():
        decoder.linear.weight[:, 1] = decoder.linear.weight[:, 0]  # rows 0 and 1 now parallel
    expected = 2 * 1.0**2 / 9  # two off-diagonal ones in a 3 x 3 matrix
    assert torch.isclose(decoder.orthogonality_penalty(), torch.tensor(expected))


def test_relation_network_equals_explicit_pairs_without_final_relu():
    torch.manual_seed(0)
    net = RelationNetwork(latent_dim=4)
    codes, labels = torch.randn(2, 6, 4), torch.tensor([[0, 1, 2, 0, 1, 2], [2, 2, 0, 0, 1, 1]])
    out = net(codes, labels, n_way=3)
    for b in range(2):
        pairs = torch.cat([codes[b].repeat_interleave(6, 0), codes[b].repeat(6, 1)], dim=1)
        h = torch.relu(net.layers[0](pairs))
        h = net.layers[2](torch.relu(net.layers[1](h))).view(6, 6, 8).mean(1)
        for c in range(3):
            assert torch.allclose(out[b, c], h[labels[b] == c].mean(0), atol=1e-5)
    assert (out < 0).any()  # means and raw scales can be negative: no ReLU after the last layer


def test_latents_are_sampled_in_training_and_the_mean_at_evaluation():
    params = torch.tensor([[0.5, -1.0, 0.3, 0.2]])  # mean (0.5, -1.0), raw scale (0.3, 0.2)
    mean, kl = sample_gaussian(params, sample=False)
    assert torch.equal(mean, params[:, :2]) and kl == 0
    torch.manual_seed(0)
    z, kl = sample_gaussian(params.expand(20000, 4), sample=True)
    std = torch.exp(torch.tensor([0.3, 0.2])) - 1  # sigma = exp(u) - 1, not the raw output
    assert torch.allclose(z.std(0), std, rtol=0.05) and kl.isfinite()


def test_encoder_penalty_gradient_reaches_only_the_initial_code():
    module = tiny_module()
    module.train()
    out = module(random_episode())
    decoder_grad = torch.autograd.grad(
        out.encoder_penalty, module.net.decoder.linear.weight, allow_unused=True
    )[0]
    assert decoder_grad is None or decoder_grad.abs().sum() == 0
    encoder_grad = torch.autograd.grad(out.encoder_penalty, module.strategy.encoder.linear.weight)[
        0
    ]
    assert encoder_grad.abs().sum() > 0


def test_evaluation_is_deterministic():
    module = tiny_module().eval()
    episode = random_episode()
    with torch.enable_grad():
        a, b = module(episode).query_logits, module(episode).query_logits
    assert torch.equal(a, b)


def test_inner_loop_lowers_the_support_loss():
    module = tiny_module(inner_steps=5, finetune_steps=0, dropout=0.0).eval()
    with torch.enable_grad():
        losses = module(random_episode()).support_losses
    assert losses[-1] < losses[0]


def test_per_tensor_clipping_clamps_values_then_each_norm():
    big, small = torch.full((100,), 5.0), torch.tensor([0.01, -0.02])
    assert clip_per_tensor_([big, small], value=0.1, max_norm=0.1)
    assert torch.isclose(big.norm(), torch.tensor(0.1)) and big.abs().max() <= 0.1
    assert torch.equal(small, torch.tensor([0.01, -0.02]))  # not scaled by the other tensor


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_clipping_reports_non_finite_gradients_before_clamping_them(bad):
    grads = [torch.tensor([0.01]), torch.tensor([bad, 0.5])]
    assert not clip_per_tensor_(grads, value=0.1, max_norm=0.1)


def test_clipping_calls_huge_finite_gradients_finite():
    # The 2-norm of these overflows float32; the values themselves are finite and get clipped.
    grads = [torch.full((4,), 1e30)]
    assert clip_per_tensor_(grads, value=0.1, max_norm=0.1)
    assert torch.isclose(grads[0].norm(), torch.tensor(0.1))


def test_episode_accuracy_mean_and_95_percent_interval():
    metric = EpisodeAccuracy()
    values = torch.tensor([0.2, 0.4, 0.6, 1.0, 0.8])
    metric.update(values[:2])
    metric.update(values[2:])
    mean, ci, n = metric.compute()
    assert n == 5
    assert torch.isclose(mean, values.mean())
    assert torch.isclose(ci, 1.96 * values.std() / 5**0.5)


def test_one_model_decodes_any_number_of_classes():
    module = tiny_module().eval()
    with torch.enable_grad():
        logits = module(random_episode(n=7)).query_logits
    assert logits.shape == (2, 21, 7)


def test_query_loss_is_mean_cross_entropy():
    module = tiny_module()
    module.train()
    episode = random_episode()
    out = module(episode)
    terms = module.meta_loss(out, episode.query_y)
    expected = F.cross_entropy(out.query_logits.flatten(0, 1), episode.query_y.flatten())
    assert torch.isclose(terms["query_loss"], expected)


def test_pixel_nearest_neighbour_copies_the_label_of_the_closest_support_image():
    from leo_lightning.data.episode import Episode
    from leo_lightning.jobs.baselines import pixel_nearest_neighbour

    support = torch.stack([torch.full((1, 2, 2), v, dtype=torch.uint8) for v in (0, 100, 200)])
    query = torch.stack([torch.full((1, 2, 2), v, dtype=torch.uint8) for v in (190, 10, 120)])
    episode = Episode(support[None], torch.tensor([[2, 0, 1]]), query[None], torch.zeros(1, 3))
    assert pixel_nearest_neighbour(episode).tolist() == [[1, 2, 0]]


def test_universal_starts_every_class_from_the_same_learned_latent():
    module = tiny_module(strategy={"_target_": "leo_lightning.strategies.Universal"})
    with torch.no_grad():
        module.strategy.z_meta.copy_(torch.randn_like(module.strategy.z_meta))
    episode = random_episode()
    features = module.net.features(episode.support_x)
    z0, kl = module.strategy.initial_latents(module.net, features, episode.support_y, 5)
    assert z0.shape == (2, 5, 8) and float(kl) == 0.0
    assert torch.equal(z0, module.strategy.z_meta.expand(2, 5, 8))  # every task, every class
    grads = meta_gradients(module, episode)
    assert grads["strategy.z_meta"].abs().sum() > 0
    assert not any(name.startswith("strategy.encoder") for name in grads)


def test_decoding_draws_the_same_weights_without_computing_a_kl():
    """decode runs once per inner step; its KL was computed and thrown away each time."""
    from leo_lightning.models.distributions import draw_gaussian, sample_gaussian

    params = torch.randn(2, 5, 16)
    torch.manual_seed(3)
    with_kl, _ = sample_gaussian(params, True, 0.1)
    torch.manual_seed(3)
    torch.testing.assert_close(draw_gaussian(params, True, 0.1), with_kl, rtol=0, atol=0)
    assert torch.equal(draw_gaussian(params, False), sample_gaussian(params, False)[0])
