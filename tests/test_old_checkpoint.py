"""A checkpoint written by an earlier release still loads, scores the same and resumes.

tests/data/leo_0.1.0_amortized_tiny.ckpt was written by leo-lightning 0.1.0 before the config
layout changed (its .json says how); its stored config is migrated when it is read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY_RUN

import leo_lightning as ll

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
OLD = DATA / "leo_0.1.0_amortized_tiny.ckpt"
RECORD = json.loads((DATA / "leo_0.1.0_amortized_tiny.json").read_text())
ONE_PREDICTION = 1 / (RECORD["test/episodes"] * 5 * 3)  # 32 episodes of 5 x 3 queries


def test_an_old_checkpoint_evaluates_to_its_recorded_accuracy(tmp_path):
    results = ll.evaluate(OLD, [f"hydra.run.dir={tmp_path / 'eval'}", f"paths.data_dir={tmp_path}"])
    assert results["strategy"] == "Amortized"
    # fp32 throughout (model.backbone_autocast=null): at most one query may flip on another CPU
    assert abs(results["test/acc"] - RECORD["test/acc"]) <= ONE_PREDICTION + 1e-6


def test_an_old_checkpoint_loads_in_the_python_api():
    leo = ll.LEO.from_checkpoint(OLD)
    assert leo.input_shape == (1, 28, 28) and leo.config["model"]["latent_dim"] == 8


def test_an_old_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(OLD, run / "checkpoints" / "last.ckpt")
    stored = torch.load(OLD, map_location="cpu", weights_only=True)
    results = ll.train(
        [
            *TINY_RUN,
            "model.latent_dim=8",
            "model.backbone.channels=8",
            "model.backbone_autocast=null",
            "seed=3",
            "trainer.max_steps=22",
            "ckpt_path=last",
            "test=false",
            f"hydra.run.dir={run}",
            f"paths.data_dir={tmp_path}",
        ]
    )
    assert stored["global_step"] == 20 and results["meta_train_steps"] == 22
