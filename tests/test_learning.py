"""A short real meta-training run on glyphs learns: query accuracy far above chance."""

from __future__ import annotations

import lightning as L
import pytest
from helpers import quiet_trainer, tiny_module

from leo_lightning.data import EpisodicDataModule
from leo_lightning.data.glyphs import GlyphSource

pytestmark = pytest.mark.slow


def test_short_fit_on_glyphs_lifts_validation_accuracy_far_above_chance(tmp_path):
    L.seed_everything(0)
    source = GlyphSource(
        tmp_path, train_classes=200, val_classes=40, test_classes=40, examples_per_class=8
    )
    datamodule = EpisodicDataModule(
        source,
        image_size=28,
        channels=1,
        n_way=5,
        k_shot=1,
        n_query=5,
        meta_batch_size=4,
        eval_batch_size=20,
        val_episodes=100,
        test_episodes=20,
    )
    module = tiny_module(
        backbone={"_target_": "leo_lightning.models.Conv4", "in_channels": 1, "channels": 16},
        latent_dim=16,
        lr=3e-3,
    )
    trainer = quiet_trainer(max_steps=150, val_check_interval=150)
    trainer.fit(module, datamodule=datamodule)
    accuracy = trainer.callback_metrics["val/acc"].item()
    assert accuracy > 0.6, accuracy  # chance is 0.2
