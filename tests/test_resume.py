"""Exact resume: 2n steps in one go equal n steps, a stop, and n more from last.ckpt."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

pytestmark = pytest.mark.slow

TINY = [
    "debug=fast",
    "model.latent_dim=8",
    "model.backbone.channels=8",
    "model.backbone_autocast=null",  # bf16 kernels may differ between runs; keep fp32 here
    "data.source.examples_per_class=6",
    "data.n_query=3",
    "trainer.limit_val_batches=0",
    "test=false",
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
]


def train(tmp_path, name, *overrides):
    env = dict(os.environ, LEO_OUTPUT_DIR=str(tmp_path / name), LEO_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *TINY, *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (checkpoint,) = (tmp_path / name).glob("runs/*/*/checkpoints/last.ckpt")
    return checkpoint


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    straight = torch.load(train(tmp_path, "straight", "trainer.max_steps=6"), weights_only=True)
    half = train(tmp_path, "half", "trainer.max_steps=3")
    resumed_path = train(tmp_path, "resumed", f"ckpt_path={half}", "trainer.max_steps=6")
    resumed = torch.load(resumed_path, weights_only=True)
    assert straight["global_step"] == resumed["global_step"] == 6
    for name, value in straight["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][name], value, atol=1e-6), name
    for a, b in zip(
        straight["optimizer_states"][0]["state"].values(),
        resumed["optimizer_states"][0]["state"].values(),
    ):
        assert torch.allclose(a["exp_avg"], b["exp_avg"], atol=1e-6)
