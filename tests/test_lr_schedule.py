"""model.lr_schedule and model.warmup_steps: the outer learning rate over a run, stepped once per
applied meta-update, saved in checkpoints and continued on resume, logged to TensorBoard."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import quiet_trainer, random_image_datamodule, tiny_module
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback
from test_config import compose_train
from test_numerics import poison_losses

from leo_lightning.errors import CheckpointError
from leo_lightning.jobs.callbacks import LastCheckpoint
from leo_lightning.training.checkpoints import CHECKPOINT_KEY, check_compatible

LR = 1e-3


class RecordRates(Callback):
    """The outer rate each training batch is about to use."""

    def __init__(self):
        self.rates: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rates.append(module.optimizers().param_groups[0]["lr"])


def fit(module, max_steps, ckpt_path=None, callbacks=(), **trainer_kwargs):
    """Fit without validation; the rates each step used."""
    rates = RecordRates()
    trainer = quiet_trainer(
        max_steps=max_steps, limit_val_batches=0, callbacks=[rates, *callbacks], **trainer_kwargs
    )
    trainer.fit(module, datamodule=random_image_datamodule(), ckpt_path=ckpt_path)
    return rates.rates


def cosine_with_warmup(warmup: int, total: int) -> list[float]:
    """The documented curve, written out: a linear ramp of `warmup` updates, then a half cosine."""
    ramp = [LR * (k + 1) / (warmup + 1) for k in range(warmup)]
    decay = [LR * (1 + math.cos(math.pi * t / (total - warmup))) / 2 for t in range(total - warmup)]
    return ramp + decay


def test_the_default_is_a_constant_rate_without_a_scheduler():
    optimizer = tiny_module(lr=LR).configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)  # today's optimizer, nothing to step
    assert optimizer.param_groups[0]["lr"] == LR and "initial_lr" not in optimizer.param_groups[0]


def test_cosine_with_warmup_follows_its_curve_step_by_step():
    rates = fit(tiny_module(lr=LR, lr_schedule="cosine", warmup_steps=2), max_steps=6)
    assert rates == pytest.approx(cosine_with_warmup(2, 6), rel=1e-9)


def test_warmup_alone_ramps_up_then_holds_model_lr():
    rates = fit(tiny_module(lr=LR, warmup_steps=3), max_steps=5)
    assert rates == pytest.approx([LR / 4, LR / 2, 3 * LR / 4, LR, LR], rel=1e-9)


def test_cosine_without_a_step_budget_fails_naming_trainer_max_steps():
    module = tiny_module(lr_schedule="cosine")
    with pytest.raises(ValueError, match=r"trainer\.max_steps=-1"):
        fit(module, max_steps=-1, max_time="00:00:00:30")


def test_a_skipped_update_does_not_move_the_schedule():
    module = tiny_module(lr=LR, lr_schedule="cosine")
    poison_losses(module, steps={1})
    rates = fit(module, max_steps=4)  # 5 batches: 4 applied updates and the skipped one
    expected = cosine_with_warmup(0, 4)
    assert rates == pytest.approx([expected[0], expected[1], *expected[1:]], rel=1e-9)


class StopAfter(Callback):
    """Stops a run after `steps` updates, as an interruption would (its max_steps unchanged)."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.steps:
            trainer.should_stop = True


def test_a_resumed_run_continues_the_same_curve(tmp_path):
    straight = fit(tiny_module(lr=LR, lr_schedule="cosine", warmup_steps=2), max_steps=6)

    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    stop = StopAfter(3)
    first = fit(tiny_module(lr=LR, lr_schedule="cosine", warmup_steps=2), 6, callbacks=[last, stop])
    resumed_module = tiny_module(lr=LR, lr_schedule="cosine", warmup_steps=2)
    resumed = fit(resumed_module, 6, ckpt_path=last.path, callbacks=[last])

    assert len(first) == len(resumed) == 3
    assert first + resumed == pytest.approx(straight, rel=1e-12)
    saved = torch.load(last.path, weights_only=True)
    assert saved["global_step"] == 6 and saved["lr_schedulers"][0]["last_epoch"] == 6


def test_a_resume_with_a_new_lr_scales_the_rest_of_the_curve(tmp_path):
    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    fit(tiny_module(lr=LR, lr_schedule="cosine"), 6, callbacks=[last, StopAfter(3)])
    resumed = fit(tiny_module(lr=2 * LR, lr_schedule="cosine"), 6, ckpt_path=last.path)
    assert resumed == pytest.approx([2 * r for r in cosine_with_warmup(0, 6)[3:]], rel=1e-9)


@pytest.mark.parametrize(
    ("saved", "configured", "problem"),
    [
        ({"lr_schedule": "constant"}, {"lr_schedule": "cosine"}, "model.lr_schedule: checkpoint"),
        ({"warmup_steps": 0}, {"warmup_steps": 5}, "model.warmup_steps: checkpoint 0"),
        ({"lr_schedule": "cosine"}, {"lr_schedule": "cosine", "steps": 9}, "trainer.max_steps"),
    ],
    ids=["schedule", "warmup", "cosine length"],
)
def test_a_resume_cannot_change_the_shape_of_the_schedule(saved, configured, problem):
    configured = dict(configured)
    module = tiny_module(**{k: v for k, v in configured.items() if k != "steps"})
    module.run_config = {"trainer": {"max_steps": configured.get("steps", 6)}}
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {**module.hparams, **saved},
        CHECKPOINT_KEY: {"config": {"trainer": {"max_steps": 6}}},
    }
    with pytest.raises(CheckpointError, match=problem):
        check_compatible(checkpoint, module, "x.ckpt")


def test_the_configured_monitor_logs_the_rate_to_tensorboard(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monitor = instantiate(compose_train().callbacks.learning_rate_monitor)
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    module = tiny_module(lr=LR, warmup_steps=1)
    fit(module, max_steps=2, callbacks=[monitor], logger=logger, log_every_n_steps=1)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    logged = [(e.step, e.value) for e in events.Scalars("train/lr")]
    assert logged == [(0, pytest.approx(LR / 2)), (1, pytest.approx(LR))]


def test_the_monitor_lets_a_run_without_a_logger_train():
    monitor = instantiate(compose_train().callbacks.learning_rate_monitor)
    assert fit(tiny_module(lr=LR), max_steps=1, callbacks=[monitor]) == [LR]


def test_meta_train_step_outside_a_trainer_refuses_a_schedule():
    import leo_lightning as ll

    leo = ll.LEO(["model.lr_schedule=cosine", "model.latent_dim=8", "model.backbone.channels=8"])
    images = torch.zeros(5, 1, 28, 28, dtype=torch.uint8)
    labels = torch.arange(5)
    with pytest.raises(ValueError, match="model.lr_schedule=cosine"):
        leo.meta_train_step(images, labels, images, labels)
