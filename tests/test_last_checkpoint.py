"""last.ckpt is kept current between validations: at a step or time interval, after every
validation and at the end of training, so a kill loses little work."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers import quiet_trainer, random_image_datamodule, tiny_module
from lightning.pytorch.callbacks import Callback

from leo_lightning.jobs.callbacks import LastCheckpoint


class SaveSteps(Callback):
    """The global step of every checkpoint written."""

    def __init__(self):
        self.steps = []

    def on_save_checkpoint(self, trainer, module, checkpoint):
        self.steps.append(checkpoint["global_step"])


def fit(tmp_path, last, max_steps, **trainer_overrides):
    saves = SaveSteps()
    trainer = quiet_trainer(max_steps=max_steps, callbacks=[last, saves], **trainer_overrides)
    trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    return saves.steps


def test_last_checkpoint_is_written_every_n_steps_and_at_the_end(tmp_path):
    last = LastCheckpoint(str(tmp_path), every_n_steps=3, every_seconds=None)
    # after the first step, then every 3 steps counted from the last save, and at the end
    assert fit(tmp_path, last, max_steps=7, limit_val_batches=0) == [1, 4, 7]
    assert torch.load(last.path, weights_only=True)["global_step"] == 7


def test_last_checkpoint_is_written_when_its_time_interval_has_passed(tmp_path):
    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=0)
    assert fit(tmp_path, last, max_steps=3, limit_val_batches=0) == [1, 2, 3]


def test_last_checkpoint_is_written_after_every_validation(tmp_path):
    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    assert fit(tmp_path, last, max_steps=5, val_check_interval=2) == [1, 2, 4, 5]


def test_the_first_last_checkpoint_is_written_after_the_first_step(tmp_path):
    """A run killed before its first interval or validation still leaves a last.ckpt (and so
    the refusal's advice, ckpt_path=last, works)."""
    last = LastCheckpoint(str(tmp_path), every_n_steps=100, every_seconds=None)
    assert fit(tmp_path, last, max_steps=5, limit_val_batches=0) == [1, 5]


@pytest.mark.parametrize(("key", "value"), [("every_n_steps", 0), ("every_seconds", -1)])
def test_last_checkpoint_rejects_a_step_interval_below_1_or_a_negative_time(tmp_path, key, value):
    with pytest.raises(ValueError, match=key):
        LastCheckpoint(str(tmp_path), **{key: value})


class CopyAtStep(Callback):
    """Keeps a copy of `source` as it is right after the training step `step`."""

    def __init__(self, source, target, step):
        self.source, self.target, self.step = source, target, step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step and not self.target.exists():
            shutil.copy(self.source, self.target)


def test_resuming_from_a_step_interval_checkpoint_equals_an_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    straight = tiny_module()
    quiet_trainer(max_steps=6, limit_val_batches=0).fit(
        straight, datamodule=random_image_datamodule()
    )

    torch.manual_seed(0)
    last = LastCheckpoint(str(tmp_path), every_n_steps=3, every_seconds=None)
    at_step_3 = CopyAtStep(last.path, tmp_path / "step3.ckpt", step=3)
    quiet_trainer(max_steps=5, limit_val_batches=0, callbacks=[last, at_step_3]).fit(
        tiny_module(), datamodule=random_image_datamodule()
    )
    resumed = tiny_module()
    quiet_trainer(max_steps=6, limit_val_batches=0).fit(
        resumed, datamodule=random_image_datamodule(), ckpt_path=at_step_3.target
    )
    for (name, value), other in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(value, other, atol=1e-6), name


@pytest.mark.slow
def test_last_checkpoint_after_a_validation_names_that_validation_s_best(tmp_path):
    """last.ckpt is written after ModelCheckpoint has recorded the validation it follows, so a
    resumed run tests the same best checkpoint as an uninterrupted one, and only one
    best-*.ckpt file is kept."""
    from helpers import TINY_CONV4, TINY_RUN

    import leo_lightning as ll

    results = ll.train(
        [
            *TINY_RUN,
            *TINY_CONV4,
            "trainer.val_check_interval=5",
            "test=false",
            f"hydra.run.dir={tmp_path / 'run'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ]
    )
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    (state,) = [v for k, v in saved["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert state["best_model_path"] == results["best_ckpt"]
    kept = sorted(str(p) for p in (tmp_path / "run" / "checkpoints").glob("best-*.ckpt"))
    assert kept == [results["best_ckpt"]]
