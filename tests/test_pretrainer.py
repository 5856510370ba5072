"""The pretraining module: a classifier over the training classes whose checkpoint resumes
exactly and rebuilds the backbone it trained, and whose validation scores the embedding."""

from __future__ import annotations

import lightning as L
import torch
from helpers import CONV4, quiet_trainer, random_episode, random_image_datamodule

from leo_lightning.data.pretrain_datamodule import PretrainDataModule
from leo_lightning.jobs.callbacks import LastCheckpoint
from leo_lightning.training.pretrainer import (
    Pretrainer,
    nearest_centroid_logits,
    pretrained_backbone,
)

SETTINGS = dict(batch_size=8, channels_last=False, backbone_autocast=None)


def pretrainer(**overrides) -> Pretrainer:
    L.seed_everything(0)
    return Pretrainer(CONV4, [1, 28, 28], n_classes=10, **{**SETTINGS, **overrides})


def fit(module, max_steps, callbacks=(), ckpt_path=None):
    data = PretrainDataModule(random_image_datamodule(), batch_size=8, seed=0)
    trainer = quiet_trainer(max_steps=max_steps, limit_val_batches=0, callbacks=list(callbacks))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return module


class StopAt(L.Callback):
    """An interruption: training of a 6-step run (its cosine is 6 steps long) stops here."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        trainer.should_stop = trainer.global_step >= self.step


def test_a_resumed_pretraining_equals_an_uninterrupted_one(tmp_path):
    straight = fit(pretrainer(), 6)
    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    fit(pretrainer(), 6, [last, StopAt(3)])
    resumed = fit(pretrainer(), 6, [last], ckpt_path=last.path)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_the_checkpoint_rebuilds_the_trained_backbone(tmp_path):
    last = LastCheckpoint(str(tmp_path), every_n_steps=None, every_seconds=None)
    module = pretrainer()
    module.run_config = {"data": {}}  # what leo-pretrain stores (read_checkpoint requires one)
    fit(module, 2, [last])
    backbone, hparams, _ = pretrained_backbone(last.path)
    assert hparams["n_classes"] == 10 and hparams["input_shape"] == [1, 28, 28]
    for name, value in module.backbone.state_dict().items():
        assert torch.equal(backbone.state_dict()[name], value), name


def test_the_rotation_head_exists_only_with_its_loss():
    assert pretrainer().rotation_head is None
    assert pretrainer(rotation_weight=0.5).rotation_head.out_features == 4


def test_a_step_with_the_rotation_loss_trains_both_heads():
    module = pretrainer(rotation_weight=0.5)
    images, labels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8), torch.arange(4)
    module.log_dict = lambda *a, **k: None  # no Trainer to log to
    module.training_step((images, labels), 0).backward()
    assert module.rotation_head.weight.grad.abs().sum() > 0
    assert module.classifier.weight.grad.abs().sum() > 0


def test_validation_classifies_by_the_nearest_class_mean_of_normalised_features():
    module, episode = pretrainer().eval(), random_episode(b=1, n=3, k=2, q=2)
    logits = nearest_centroid_logits(module, episode)  # [1, 6, 3]
    with torch.no_grad():
        features = module.features(episode.support_x[0])
        support = torch.nn.functional.normalize(features, dim=-1)
        query = torch.nn.functional.normalize(module.features(episode.query_x[0]), dim=-1)
    means = torch.stack([support[episode.support_y[0] == c].mean(0) for c in range(3)])
    expected = -torch.cdist(query, means).square()
    torch.testing.assert_close(logits[0].detach(), expected, rtol=1e-4, atol=1e-5)
