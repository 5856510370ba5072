"""A short real meta-training run on glyphs learns: query accuracy far above chance."""

from __future__ import annotations

import lightning as L
import pytest
from helpers import quiet_trainer, tiny_module

from leo_lightning.data import EpisodicDataModule
from leo_lightning.data.glyphs import GlyphSource

pytestmark = pytest.mark.slow

CONV4_16 = {"_target_": "leo_lightning.models.Conv4", "in_channels": 1, "channels": 16}


def glyph_episodes(tmp_path, classes: int, examples: int, n_query: int, val_episodes: int):
    """5-way 1-shot episodes of real glyphs: `classes` for training, a fifth of that each for
    validation and test."""
    source = GlyphSource(
        tmp_path,
        train_classes=classes,
        val_classes=classes // 5,
        test_classes=classes // 5,
        examples_per_class=examples,
    )
    return EpisodicDataModule(
        source,
        image_size=28,
        channels=1,
        n_way=5,
        k_shot=1,
        n_query=n_query,
        meta_batch_size=4,
        eval_batch_size=20,
        val_episodes=val_episodes,
        test_episodes=20,
    )


def test_short_fit_on_glyphs_lifts_validation_accuracy_far_above_chance(tmp_path):
    L.seed_everything(0)
    datamodule = glyph_episodes(tmp_path, classes=200, examples=8, n_query=5, val_episodes=100)
    module = tiny_module(backbone=CONV4_16, latent_dim=16, lr=3e-3)
    trainer = quiet_trainer(max_steps=150, val_check_interval=150)
    trainer.fit(module, datamodule=datamodule)
    accuracy = trainer.callback_metrics["val/acc"].item()
    assert accuracy > 0.6, accuracy  # chance is 0.2


MAML = "leo_lightning.strategies.MAML"


@pytest.mark.parametrize(
    ("strategy", "overrides"),
    [
        ({"_target_": MAML, "sgd_steps": 2}, {"inner_steps": 0, "finetune_steps": 0}),
        (
            {"_target_": MAML, "sgd_steps": 2, "first_order": True},
            {"inner_steps": 0, "finetune_steps": 0},
        ),
        (
            {"_target_": "leo_lightning.strategies.MetaSGD", "sgd_steps": 2},
            {"inner_steps": 0, "finetune_steps": 0},
        ),
        (
            {"_target_": "leo_lightning.strategies.ProtoNet"},
            {"inner_steps": 0, "finetune_steps": 0},
        ),
        (
            {"_target_": "leo_lightning.strategies.AmortizedPure"},
            {"inner_steps": 0, "finetune_steps": 0},
        ),
    ],
    ids=["maml", "fomaml", "meta_sgd", "protonet", "amortized_pure"],
)
def test_each_baseline_learns_a_tiny_glyph_task_within_a_few_steps(tmp_path, strategy, overrides):
    L.seed_everything(0)
    datamodule = glyph_episodes(tmp_path, classes=100, examples=6, n_query=3, val_episodes=40)
    pure = strategy["_target_"].endswith("AmortizedPure")  # no inner loop to help it along
    if pure:  # the amortized test's model and budget above
        overrides = {**overrides, "latent_dim": 16}
        overrides["backbone"] = {**CONV4_16}
    module = tiny_module(strategy=strategy, lr=3e-3, **overrides)
    steps = 150 if pure else 30
    trainer = quiet_trainer(max_steps=steps, val_check_interval=steps)
    trainer.fit(module, datamodule=datamodule)
    accuracy = trainer.callback_metrics["val/acc"].item()
    assert accuracy > 0.4, accuracy  # chance is 0.2
