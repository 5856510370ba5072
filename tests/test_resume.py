"""Exact resume: 2n steps in one go equal n steps, a stop, and n more from last.ckpt."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_CONV4, TINY_RUN, train_checkpoint

pytestmark = pytest.mark.slow

TINY = [
    *TINY_RUN,
    *TINY_CONV4,
    "model.backbone_autocast=null",  # bf16 kernels may differ between runs; keep fp32 here
    "trainer.limit_val_batches=0",
    "test=false",
]


def train(tmp_path, name, *overrides):
    return torch.load(train_checkpoint(tmp_path, name, *TINY, *overrides), weights_only=True)


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = train(tmp_path, "straight", "trainer.max_steps=6")
    half = train_checkpoint(tmp_path, "half", *TINY, "trainer.max_steps=3")
    resumed = train(tmp_path, "resumed", f"ckpt_path={half}", "trainer.max_steps=6")
    assert straight["global_step"] == resumed["global_step"] == 6
    for name, value in straight["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][name], value, atol=1e-6), name
    for a, b in zip(
        straight["optimizer_states"][0]["state"].values(),
        resumed["optimizer_states"][0]["state"].values(),
    ):
        assert torch.allclose(a["exp_avg"], b["exp_avg"], atol=1e-6)


def test_a_resume_with_a_new_lr_trains_with_it_and_records_it(tmp_path):
    from helpers import quiet_trainer, random_image_datamodule, tiny_module

    from leo_lightning.jobs.callbacks import LastCheckpoint

    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    first = quiet_trainer(max_steps=2, limit_val_batches=0, callbacks=[last])
    first.fit(tiny_module(lr=1e-3), datamodule=random_image_datamodule())

    resumed = tiny_module(lr=1e-2)
    quiet_trainer(max_steps=3, limit_val_batches=0, callbacks=[last]).fit(
        resumed, datamodule=random_image_datamodule(), ckpt_path=last.path
    )
    assert [g["lr"] for g in resumed.optimizers().optimizer.param_groups] == [1e-2]
    saved = torch.load(last.path, weights_only=True)
    assert saved["global_step"] == 3 and saved["hyper_parameters"]["lr"] == 1e-2
    assert [g["lr"] for g in saved["optimizer_states"][0]["param_groups"]] == [1e-2]
