"""Non-finite losses skip the update and are counted; too many in a row stop training."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import random_image_datamodule, tiny_module
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


def trainer(tmp_path, max_steps):
    return L.Trainer(
        max_steps=max_steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
        limit_val_batches=0,
        accelerator="cpu",
        callbacks=[ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)],
    )


def poison_losses(module, steps):
    """Make the meta-loss NaN at the given training-step indices."""
    original, calls = module.meta_loss, {"n": 0}

    def meta_loss(out, query_y):
        terms = original(out, query_y)
        if calls["n"] in steps:
            terms["loss"] = terms["loss"] * float("nan")
        calls["n"] += 1
        return terms

    module.meta_loss = meta_loss


def test_nan_loss_skips_the_update_and_counts_it(tmp_path):
    module = tiny_module()
    poison_losses(module, steps={1, 2})
    trainer(tmp_path, max_steps=3).fit(module, datamodule=random_image_datamodule())
    assert int(module.skipped_steps) == 2
    assert module.trainer.global_step == 3  # skipped updates are not optimizer steps
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_gradient_with_a_finite_loss_skips_the_update(tmp_path, bad):
    module = tiny_module(max_consecutive_skips=1)
    weight = module.net.decoder.linear.weight
    weight.register_hook(lambda grad: grad.index_fill(0, torch.tensor([0]), bad))
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    with pytest.raises(FloatingPointError):
        trainer(tmp_path, max_steps=1).fit(module, datamodule=random_image_datamodule())
    assert int(module.skipped_steps) == 1
    assert all(torch.equal(before[name], p) for name, p in module.named_parameters())


def test_skipped_update_leaves_the_weights_untouched(tmp_path):
    module = tiny_module(max_consecutive_skips=1)
    poison_losses(module, steps={0})
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    with pytest.raises(FloatingPointError):
        trainer(tmp_path, max_steps=1).fit(module, datamodule=random_image_datamodule())
    assert all(torch.equal(before[name], p) for name, p in module.named_parameters())


def test_consecutive_non_finite_updates_stop_with_a_checkpoint_of_the_last_good_state(tmp_path):
    module = tiny_module(max_consecutive_skips=3)
    poison_losses(module, steps={2, 3, 4, 5, 6})
    with pytest.raises(FloatingPointError, match="3 consecutive.*last.ckpt"):
        trainer(tmp_path, max_steps=10).fit(module, datamodule=random_image_datamodule())
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2
    assert int(checkpoint["state_dict"]["skipped_steps"]) >= 2


def saved_states(tmp_path):
    return {p.name: torch.load(p, weights_only=True) for p in tmp_path.rglob("*.ckpt")}


def all_weights_finite(checkpoint):
    return all(
        t.isfinite().all() for t in checkpoint["state_dict"].values() if t.is_floating_point()
    )


def test_an_update_that_makes_the_weights_non_finite_stops_training_before_any_save(tmp_path):
    class InfiniteRateAtStep(Callback):  # as model.lr=inf would, which validation now refuses
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 2:
                module.optimizers().param_groups[0]["lr"] = float("inf")

    module = tiny_module(max_consecutive_skips=2)
    every_step = ModelCheckpoint(dirpath=tmp_path / "checkpoints", every_n_train_steps=1)
    every_step.CHECKPOINT_NAME_LAST, every_step.save_last = "last", True
    fit = trainer(tmp_path, max_steps=10)
    fit.callbacks[:] = [c for c in fit.callbacks if not isinstance(c, ModelCheckpoint)]
    fit.callbacks += [every_step, InfiniteRateAtStep()]
    with pytest.raises(FloatingPointError, match="step 3 made the weights non-finite.*last.ckpt"):
        fit.fit(module, datamodule=random_image_datamodule())
    states = saved_states(tmp_path)
    assert states["last.ckpt"]["global_step"] == 2
    assert all(all_weights_finite(state) for state in states.values())


def test_skips_after_non_finite_weights_save_nothing_as_the_last_good_state(tmp_path):
    module = tiny_module(max_consecutive_skips=2)  # e.g. resumed from a checkpoint gone bad
    with torch.no_grad():
        module.net.decoder.linear.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="weights are not finite, so nothing was saved"):
        trainer(tmp_path, max_steps=10).fit(module, datamodule=random_image_datamodule())
    assert saved_states(tmp_path) == {}


def _subnormals_survive() -> bool:
    return (torch.tensor([1e-39]) * 1.0).item() != 0.0


def test_a_fit_that_fails_leaves_subnormal_floats_working(tmp_path):
    """Steps flush subnormals to zero (10x faster second-order backward on x86); a fit that
    raises must not leave the whole process flushing them, e.g. in a notebook."""
    module = tiny_module()

    def fail(*args, **kwargs):
        assert not _subnormals_survive(), "the step runs with subnormals flushed"
        raise RuntimeError("boom")

    module.meta_loss = fail
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, max_steps=2).fit(module, datamodule=random_image_datamodule())
    assert _subnormals_survive()
