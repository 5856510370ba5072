"""The few-shot ResNet-12 backbone: its shapes, and that every part of the package that handles
Conv4 (LEONet, functional_call, the BatchNorm swap, the memory estimate, configs, checkpoints)
handles it too. Small widths keep every test fast."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import random_episode, run_script, tiny_module
from hydra.utils import instantiate
from test_config import compose_train
from test_debug_fast import QUICK
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from leo_lightning.config.validation import config_problems
from leo_lightning.models import ResNet12
from leo_lightning.models.batch_norm import SupportBatchNorm, with_support_batch_norm
from leo_lightning.training.memory import activation_bytes_per_example
from leo_lightning.training.trusted_targets import allowed_targets

WIDTHS = (8, 16, 16, 32)
RESNET12 = {"_target_": "leo_lightning.models.ResNet12", "in_channels": 1, "widths": [8, 8, 16, 16]}


def small(in_channels: int = 1) -> ResNet12:
    return ResNet12(in_channels, WIDTHS)


def test_28_px_one_channel_images_give_one_feature_per_last_width():
    assert small(1)(torch.rand(5, 1, 28, 28)).shape == (5, 32)


def test_84_px_rgb_images_give_the_same_feature_size_after_the_global_pool():
    assert small(3)(torch.rand(2, 3, 84, 84)).shape == (2, 32)


def test_the_feature_dim_it_reports_is_the_one_leo_measures():
    module = tiny_module(backbone={**RESNET12, "in_channels": 3}, input_shape=[3, 84, 84])
    assert module.net.backbone.feature_dim == module.net.feature_dim == 16


def test_no_widths_are_refused():
    with pytest.raises(ValueError, match="model.backbone.widths"):
        ResNet12(1, [])


def maml_step(model: ResNet12, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """One second-order SGD step on every parameter, as strategies/maml.py takes it."""
    params = dict(model.named_parameters())
    loss = F.cross_entropy(functional_call(model, params, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    return {name: p - 0.5 * g for (name, p), g in zip(params.items(), grads)}


def test_functional_call_runs_the_adapted_parameters_of_a_maml_step():
    model, x, y = small(), torch.rand(4, 1, 16, 16), torch.arange(4)
    adapted = maml_step(model, x, y)
    copied = copy.deepcopy(model)
    copied.load_state_dict({k: v.detach() for k, v in adapted.items()}, strict=False)
    torch.testing.assert_close(functional_call(model, adapted, (x,)), copied(x))


def test_the_meta_gradient_through_a_maml_step_reaches_every_parameter():
    model, x, y = small(), torch.rand(4, 1, 16, 16), torch.arange(4)
    out = functional_call(model, maml_step(model, x, y), (x,))  # [4, 32]
    grads = torch.autograd.grad(F.cross_entropy(out, y), list(model.parameters()))
    assert all(g.abs().sum() > 0 and g.isfinite().all() for g in grads)


@pytest.mark.parametrize("strategy", ["MAML", "PerTask"])
def test_the_strategies_that_adapt_the_backbone_classify_with_it(strategy):
    """maml runs it under functional_call with SupportBatchNorm, per_task under torch.vmap."""
    module = tiny_module(
        backbone=RESNET12,
        strategy={"_target_": f"leo_lightning.strategies.{strategy}"},
        inner_steps=1,
    ).train()
    out = module.strategy(module.net, random_episode(b=1, n=2, k=1, q=1))
    assert out.query_logits.shape == (1, 2, 2) and out.query_logits.isfinite().all()


def test_every_batch_norm_the_shortcuts_included_becomes_a_support_batch_norm():
    swapped = with_support_batch_norm(small())
    kinds = [type(m) for m in swapped.modules()]
    assert kinds.count(SupportBatchNorm) == 4 * len(WIDTHS)  # 3 in the body + 1 shortcut
    assert not any(issubclass(k, _BatchNorm) for k in kinds)


def test_the_memory_estimate_counts_both_branches_of_every_stage():
    expected, size, channels = 0, 28, WIDTHS
    for width in channels:
        # body: 3 x (conv, BatchNorm) + 2 activations; shortcut: conv, BatchNorm; the activation
        # of the sum: 11 maps of [width, size, size], then the pooled one
        expected += 4 * width * (11 * size * size + (size // 2) ** 2)
        size //= 2
    assert activation_bytes_per_example(small(), (1, 28, 28)) == expected


def test_its_config_follows_the_data_s_channels_and_builds_the_standard_widths():
    cfg = compose_train("model/backbone=resnet12", "data.channels=3")
    assert cfg.model.backbone.in_channels == 3
    backbone = instantiate(cfg.model.backbone)
    assert isinstance(backbone, ResNet12) and backbone.feature_dim == 640
    assert [stage.shortcut[0].out_channels for stage in backbone.stages] == [64, 160, 320, 640]


def test_an_image_too_small_for_its_stages_is_refused_naming_the_widths():
    problems = config_problems(compose_train("model/backbone=resnet12", "data.image_size=8"))
    assert problems == [
        "data.image_size=8: must be >= 16 for a ResNet12 of 4 stages (model.backbone.widths)"
    ]
    fewer = compose_train(
        "model/backbone=resnet12", "data.image_size=8", "model.backbone.widths=[8,8,8]"
    )
    assert config_problems(fewer) == []


def test_a_checkpoint_naming_it_may_be_built_again():
    assert "leo_lightning.models.ResNet12" in allowed_targets("backbone")


@pytest.mark.slow
def test_train_py_meta_trains_leo_on_a_tiny_resnet12(tmp_path):
    quick = [o for o in QUICK if not o.startswith("model.backbone.")]  # Conv4's keys
    proc = run_script(
        "train.py",
        tmp_path,
        *quick,
        "model/backbone=resnet12",
        "model.backbone.widths=[8,8,16,16]",
        "model.backbone_autocast=null",  # no precision probe: fp32
        "data.source.examples_per_class=6",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["meta_train_steps"] == 2 and results["skipped_updates"] == 0
    stored = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert stored["hyper_parameters"]["backbone"]["_target_"] == "leo_lightning.models.ResNet12"
    assert stored["state_dict"]["net.finetune_lr"].shape == (16,)  # one rate per feature
