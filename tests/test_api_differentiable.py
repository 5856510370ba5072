"""`leo.train()`: the Python API's steps as meta-training computes them, with their graph, so
that a meta-objective of one's own reaches the parameters (issue: the research API)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import leo_lightning as ll

# A model without randomness or BatchNorm, so that the step-by-step computation and the
# module's one-pass step see the same numbers: an identity backbone on the pixels, no dropout,
# no sampling; L2 and orthogonality off and clipping out of reach, so the gradient that
# meta_train_step leaves in .grad is the plain gradient of query loss + encoder penalty.
EXACT = [
    "model/backbone=flatten",
    "model.latent_dim=8",
    "model.inner_steps=2",
    "model.finetune_steps=2",
    "model.dropout=0",
    "model.deterministic=true",
    "model.l2_weight=0",
    "model.orthogonality_weight=0",
    "model.grad_clip_value=1e9",
    "model.grad_clip_norm=1e9",
]


def task(n_way=5, queries=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = lambda m: torch.randint(0, 256, (m, 1, 28, 28), generator=g, dtype=torch.uint8)  # noqa: E731
    support_y = torch.arange(n_way)
    query_y = torch.arange(n_way).repeat_interleave(queries)
    return images(n_way), support_y, images(n_way * queries), query_y


def test_a_meta_loss_written_with_the_steps_has_the_gradients_of_meta_train_step():
    leo = ll.LEO(EXACT).train()
    support_x, support_y, query_x, query_y = task()
    codes = leo.encode_task(support_x, support_y)
    adapted = leo.inner_update(support_x, support_y, codes)
    params = leo.finetune_params(support_x, support_y, leo.decode_to_params(adapted))
    logits = leo.classifier(query_x, params)
    penalty = F.mse_loss(codes, adapted.detach())  # LEO's encoder penalty
    loss = F.cross_entropy(logits, query_y) + leo.module.hparams.encoder_penalty_weight * penalty
    named = [(n, p) for n, p in leo.module.named_parameters() if p.requires_grad]
    mine = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)

    leo.meta_train_step(support_x, support_y, query_x, query_y)  # leaves its gradients in .grad
    for (name, parameter), grad in zip(named, mine):
        if grad is None:
            assert parameter.grad is None or not parameter.grad.any(), name
        else:
            torch.testing.assert_close(grad, parameter.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_after_train_the_steps_sample_and_keep_their_graph_and_eval_detaches_them():
    leo = ll.LEO(["model/backbone=flatten", "model.latent_dim=8"]).train()
    support_x, support_y, query_x, _ = task()
    q = leo.encode_task(support_x, support_y, distribution=True)
    assert set(q) == {"codes", "mean", "std", "kl"}
    assert q["codes"].grad_fn is not None and q["kl"].grad_fn is not None
    assert not torch.allclose(q["codes"], q["mean"])  # sampled from q(z)
    params = leo.adapt(support_x, support_y)
    assert params["fc.weight"].grad_fn is not None
    leo.eval()
    assert leo.encode_task(support_x, support_y).grad_fn is None
    assert leo.classifier(query_x, leo.adapt(support_x, support_y)).grad_fn is None


def test_ones_own_optimizer_trains_the_model_through_the_steps():
    torch.manual_seed(0)
    leo = ll.LEO(["model/backbone=flatten", "model.latent_dim=8"]).train()
    support_x, support_y, query_x, query_y = task()
    optimizer = torch.optim.SGD(leo.module.parameters(), lr=0.1)
    before = leo.net.decoder.linear.weight.detach().clone()
    logits = leo.classifier(query_x, leo.adapt(support_x, support_y))
    F.cross_entropy(logits, query_y).backward()
    optimizer.step()
    assert not torch.equal(leo.net.decoder.linear.weight, before)
    assert leo.net.inner_lr.grad is not None  # reached through the latent steps


def test_universal_has_no_distribution_to_return():
    leo = ll.LEO(["strategy=universal", "model/backbone=flatten", "model.latent_dim=8"])
    support_x, support_y, _, _ = task()
    with pytest.raises(TypeError, match="no latent distribution"):
        leo.encode_task(support_x, support_y, distribution=True)
