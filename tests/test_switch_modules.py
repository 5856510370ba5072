"""The modules behind the optional switches of issue #16, one at a time: output shapes, the
permutation behaviour (relabelling a task's classes permutes the outputs the same way, and the
order of the examples does not matter), and gradients reaching every parameter."""

from __future__ import annotations

import pytest
import torch
from helpers import random_episode, tiny_module

from leo_lightning.errors import CheckpointError
from leo_lightning.models.decoder import Decoder
from leo_lightning.models.mixture_decoder import MixtureDecoder
from leo_lightning.models.relation import RelationNetwork
from leo_lightning.models.relation_attention import AttentionRelation
from leo_lightning.models.relation_rounds import RelationRounds, build_relation
from leo_lightning.models.task_decoder import TaskConditionedDecoder

D, F_DIM, N = 4, 6, 3
# Two tasks of M = 6 support codes: equal shots, and unequal shots (3, 1, 2).
LABELS = torch.tensor([[0, 1, 2, 0, 1, 2], [0, 0, 0, 1, 2, 2]])
RELABEL = torch.tensor([2, 0, 1])  # class c is called RELABEL[c]


def codes() -> torch.Tensor:
    return torch.randn(2, 6, D, generator=torch.Generator().manual_seed(0))


RELATIONS = {
    "attention": lambda: build_relation("attention", D),
    "pairwise_rounds_3": lambda: build_relation("pairwise", D, rounds=3),
    "attention_rounds_3": lambda: build_relation("attention", D, rounds=3),
}


@pytest.mark.parametrize("kind", RELATIONS)
def test_relation_gives_a_mean_and_a_raw_scale_per_class(kind):
    assert RELATIONS[kind]()(codes(), LABELS, N).shape == (2, N, 2 * D)


@pytest.mark.parametrize("kind", RELATIONS)
def test_relation_outputs_follow_a_relabelling_of_the_classes(kind):
    net = RELATIONS[kind]()
    out = net(codes(), LABELS, N)
    relabelled = net(codes(), RELABEL[LABELS], N)
    torch.testing.assert_close(relabelled[:, RELABEL], out)  # row RELABEL[c] is class c's


@pytest.mark.parametrize("kind", RELATIONS)
def test_relation_outputs_do_not_depend_on_the_order_of_the_examples(kind):
    net, order = RELATIONS[kind](), torch.tensor([4, 1, 5, 0, 3, 2])
    torch.testing.assert_close(net(codes()[:, order], LABELS[:, order], N), net(codes(), LABELS, N))


@pytest.mark.parametrize("kind", RELATIONS)
def test_relation_gradients_reach_every_parameter(kind):
    net = RELATIONS[kind]()
    net(codes(), LABELS, N).square().sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_one_round_is_the_plain_block_with_its_parameter_names():
    """relation_rounds=1 builds exactly the paper's network (the checkpoints' keys too)."""
    net = build_relation("pairwise", D, rounds=1)
    assert type(net) is RelationNetwork
    assert [n for n, _ in net.named_parameters()] == [f"layers.{i}.weight" for i in range(3)]


def test_refinement_rounds_feed_each_round_the_previous_codes():
    torch.manual_seed(0)
    net = build_relation("attention", D, rounds=3)
    assert isinstance(net, RelationRounds) and len(net.refine) == 2
    h = codes()
    for block in net.refine:
        h = h + block.per_example(h, LABELS, N)  # [B, M, d]: the residual refinement
    torch.testing.assert_close(net(codes(), LABELS, N), net.final(h, LABELS, N))
    assert len(net.regularized_weights()) == len(list(net.parameters()))


def test_attention_with_equal_shots_is_plain_softmax_attention():
    """With equal shots the partner prior is the same for every example and cancels."""
    torch.manual_seed(0)
    net = AttentionRelation(D, heads=1)
    h, labels = codes()[:1], LABELS[:1]
    q, k, v = net.query(h[0]), net.key(h[0]), net.value(h[0])
    attention = torch.softmax(q @ k.T / (2 * D) ** 0.5, dim=-1)
    per_example = net.out(torch.relu(net.mix(torch.cat([h[0], attention @ v], dim=-1))))
    torch.testing.assert_close(net.per_example(h, labels, N)[0], per_example)


def test_attention_heads_always_divide_the_width():
    assert AttentionRelation(latent_dim=4).heads == 4
    assert AttentionRelation(latent_dim=3).heads == 2  # 2d = 6


# -- decoders ------------------------------------------------------------------------------------


def latents() -> torch.Tensor:
    return torch.randn(2, N, D, generator=torch.Generator().manual_seed(1))


def with_random_conditioning(decoder):
    """FiLM and gate weights start at zero; random ones make the task dependence visible."""
    with torch.no_grad():
        for name, p in decoder.named_parameters():
            if name in ("film.weight", "gate.weight"):
                p.normal_(generator=torch.Generator().manual_seed(2))
    return decoder


DECODERS = {
    "task_conditioned": lambda: TaskConditionedDecoder(D, F_DIM),
    "mixture": lambda: MixtureDecoder(D, F_DIM, experts=3),
}


@pytest.mark.parametrize("kind", DECODERS)
def test_decoder_gives_a_weight_mean_and_raw_scale_per_class(kind):
    assert DECODERS[kind]()(latents()).shape == (2, N, 2 * F_DIM)


@pytest.mark.parametrize("kind", DECODERS)
def test_decoder_outputs_follow_a_relabelling_of_the_classes(kind):
    decoder = with_random_conditioning(DECODERS[kind]())
    torch.testing.assert_close(decoder(latents()[:, RELABEL]), decoder(latents())[:, RELABEL])


@pytest.mark.parametrize("kind", DECODERS)
def test_one_code_decodes_to_different_weights_in_different_tasks(kind):
    decoder = with_random_conditioning(DECODERS[kind]())
    z = latents()
    other_task = torch.cat([z[:, :1], -z[:, 1:]], dim=1)  # same class 0 code, other classes
    assert not torch.allclose(decoder(z)[:, 0], decoder(other_task)[:, 0])


@pytest.mark.parametrize("kind", DECODERS)
def test_decoder_gradients_reach_every_parameter_from_the_zero_initialised_conditioning(kind):
    decoder = DECODERS[kind]()
    (decoder(latents()) * torch.randn(2, N, 2 * F_DIM)).sum().backward()
    for name, p in decoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_task_conditioned_decoder_starts_as_the_linear_decoder():
    torch.manual_seed(0)
    conditioned = TaskConditionedDecoder(D, F_DIM)
    torch.manual_seed(0)
    linear = Decoder(D, F_DIM)
    torch.testing.assert_close(conditioned(latents()), linear(latents()))


def test_mixture_is_the_gate_weighted_sum_of_its_experts():
    decoder = with_random_conditioning(MixtureDecoder(D, F_DIM, experts=3))
    z = latents()
    gates = torch.softmax(z.mean(1) @ decoder.gate.weight.T, dim=-1)  # [B, E]
    each = torch.stack([z @ w.T for w in decoder.weight], dim=1)  # [B, E, N, 2F]
    torch.testing.assert_close(decoder(z), (gates[:, :, None, None] * each).sum(1))


def test_mixture_orthogonality_is_the_mean_of_each_experts_penalty():
    mixture = MixtureDecoder(D, F_DIM, experts=3)
    each = []
    for weight in mixture.weight:
        single = Decoder(D, F_DIM)
        with torch.no_grad():
            single.linear.weight.copy_(weight)
        each.append(single.orthogonality_penalty())
    torch.testing.assert_close(mixture.orthogonality_penalty(), torch.stack(each).mean())


def test_mixture_needs_an_expert():
    with pytest.raises(ValueError, match="model.decoder_experts=0: must be >= 1"):
        MixtureDecoder(D, F_DIM, experts=0)


def test_a_mixture_of_one_expert_is_leos_decoder():
    single, mixture = Decoder(D, F_DIM), MixtureDecoder(D, F_DIM, experts=1)
    with torch.no_grad():
        mixture.weight[0].copy_(single.linear.weight)
    torch.testing.assert_close(mixture(latents()), single(latents()))


@pytest.mark.parametrize("experts", [1, 2, 8])
def test_a_mixture_starts_at_the_scale_of_one_decoder_whatever_its_experts(experts):
    """The uniform average of E Glorot matrices had 1/sqrt(E) of one's scale."""
    torch.manual_seed(0)
    big = (64, 256)  # d, F: enough entries for a tight estimate of the std
    glorot = float(Decoder(*big).linear.weight.detach().std())
    mixture = MixtureDecoder(*big, experts=experts)
    mixed = mixture.weight.detach().mean(0)  # the decoder every task gets (uniform gate)
    assert float(mixed.std()) == pytest.approx(glorot, rel=0.05)


# -- per-step rates ------------------------------------------------------------------------------


def eval_logits(module, episode):
    module.eval()
    with torch.enable_grad():
        return module(episode).query_logits


def test_per_step_rates_have_a_row_per_step_and_start_as_the_shared_rates():
    shared = tiny_module(inner_steps=3, finetune_steps=2)
    per_step = tiny_module(inner_steps=3, finetune_steps=2, per_step_rates=True)
    assert per_step.net.inner_lr.shape == (3, 8) and per_step.net.finetune_lr.shape == (2, 8)
    state = {k: v for k, v in shared.state_dict().items() if not k.endswith("_lr")}
    per_step.load_state_dict(state, strict=False)
    episode = random_episode()
    torch.testing.assert_close(eval_logits(per_step, episode), eval_logits(shared, episode))


def test_each_step_uses_its_own_rate():
    module = tiny_module(inner_steps=3, finetune_steps=0, per_step_rates=True)
    episode = random_episode()
    before = eval_logits(module, episode)
    with torch.no_grad():
        module.net.inner_lr[2].zero_()  # the last step no longer moves the codes
    after = eval_logits(module, episode)
    module.net.inner_steps = 2
    with torch.no_grad():
        module.net.inner_lr.data = module.net.inner_lr.data[:2]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, eval_logits(module, episode))


def test_meta_gradients_reach_every_steps_rates():
    module = tiny_module(inner_steps=3, finetune_steps=2, per_step_rates=True).train()
    episode = random_episode()
    module.meta_loss(module(episode), episode.query_y)["loss"].backward()
    for name in ("inner_lr", "finetune_lr"):
        grad = getattr(module.net, name).grad
        assert (grad.abs().sum(dim=1) > 0).all(), name  # every row, i.e. every step


def test_per_step_rates_refuse_another_number_of_steps_naming_the_key():
    module = tiny_module(inner_steps=3, per_step_rates=True)
    module.net.inner_steps = 5
    with pytest.raises(ValueError, match=r"model.inner_steps=5: .*model.inner_steps=3"):
        eval_logits(module, random_episode())


def test_loading_rates_of_another_step_count_names_the_keys():
    saved = tiny_module(inner_steps=3, per_step_rates=True).state_dict()
    with pytest.raises(CheckpointError, match=r"net.inner_lr: .*model.inner_steps=3.*inner_steps"):
        tiny_module(inner_steps=4, per_step_rates=True).load_state_dict(saved)
    with pytest.raises(CheckpointError, match=r"per_step_rates=false"):
        tiny_module(inner_steps=3).load_state_dict(saved)


def test_the_module_regularizes_every_new_weight_matrix():
    module = tiny_module(relation="attention", relation_rounds=2, decoder="mixture")
    regularized = module.net.decoder.regularized_weights() + module.strategy.regularized_weights()
    expected = [*module.net.decoder.parameters(), *module.strategy.parameters()]
    assert {id(w) for w in regularized} == {id(p) for p in expected}
    episode = random_episode()
    terms = module.meta_loss(module.eval()(episode), episode.query_y)
    by_hand = sum(w.square().sum() for w in expected) / 2
    torch.testing.assert_close(terms["l2"], by_hand)
    torch.testing.assert_close(terms["orthogonality"], module.net.decoder.orthogonality_penalty())
