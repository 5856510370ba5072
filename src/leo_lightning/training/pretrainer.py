"""A backbone pretrained as an ordinary classifier over every meta-training class.

This is the first stage of LEO's own protocol (Rusu et al., 2019): the backbone learns by plain
cross-entropy on the training classes, is frozen, and LEO meta-learns on its features
(`leo-embed`, then `data=embeddings`). It is also the embedding of the simple baselines that
rival meta-learning on the same features (Chen et al., 2019; Tian et al., 2020).

Validation scores what the stage is for: few-shot accuracy on the fixed validation episodes by
nearest centroid on L2-normalised features (SimpleShot's L2N), so that the checkpoint kept as
`best` is the best embedding for new classes, not the best classifier of the old ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor, nn

from leo_lightning.data.episode import Episode
from leo_lightning.errors import CheckpointError
from leo_lightning.models import precision
from leo_lightning.models.inputs import as_float, feature_dim
from leo_lightning.strategies.base import n_way_of
from leo_lightning.strategies.protonet import prototypes, squared_distances
from leo_lightning.training.checkpoints import (
    CHECKPOINT_KEY,
    plain_config,
    read_checkpoint,
    state_digest,
)
from leo_lightning.training.metrics import EpisodeAccuracy, episode_accuracy
from leo_lightning.training.pretrain_settings import PretrainSettings
from leo_lightning.training.schedules import build_scheduler
from leo_lightning.training.trusted_targets import check_stored_targets
from leo_lightning.version import __version__

log = logging.getLogger(__name__)

ROTATIONS = 4  # 0, 90, 180 and 270 degrees
KIND = "pretrain"  # what CHECKPOINT_KEY's "kind" says in a checkpoint this module writes


class Pretrainer(L.LightningModule):
    """The backbone, a linear classifier over the training classes and, with
    `rotation_weight > 0`, a 4-way rotation head.

    `backbone` is a config node (its `_target_` and keys), stored so that `leo-embed` and
    `model.backbone.init` rebuild exactly this network; `n_classes` is the number of training
    classes; `settings` are the pretraining settings by name (training/pretrain_settings.py)."""

    def __init__(self, backbone: Mapping, input_shape: list[int], n_classes: int, **settings: Any):
        super().__init__()
        backbone = plain_config(backbone)
        s = PretrainSettings.from_mapping(settings)
        self.settings = s
        self.save_hyperparameters(
            {
                "backbone": backbone,
                "input_shape": list(input_shape),
                "n_classes": n_classes,
                **s.as_dict(),
            }
        )
        network = instantiate(backbone)
        if s.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.backbone = network
        self.input_shape = tuple(input_shape)
        self.feature_dim = feature_dim(self.backbone, self.input_shape)
        self.classifier = nn.Linear(self.feature_dim, n_classes)
        self.rotation_head = nn.Linear(self.feature_dim, ROTATIONS) if s.rotation_weight else None
        self.precision: precision.BackbonePrecision | None = None
        self.val_acc = EpisodeAccuracy()
        self.run_config: dict | None = None  # the composed run config, stored in checkpoints

    # -- features ----------------------------------------------------------------------------

    def features(self, x: Tensor) -> Tensor:
        """[M, *input_shape] (uint8 images or floats) -> raw features [M, F], float32."""
        x = as_float(x)
        if self.settings.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.precision is None:
            self.precision = precision.resolve(
                self.settings.backbone_autocast,
                x.device,
                self.backbone,
                self.input_shape,
                self.settings.channels_last,
            )
            log.info(self.precision.describe())
        with precision.autocast(x.device, self.precision.dtype):
            return self.backbone(x).float()

    # -- training ----------------------------------------------------------------------------

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch  # [B, *input_shape], [B]
        n = len(labels)
        if self.rotation_head is not None:
            # Every image in its 4 rotations; the class loss reads the unrotated copies only,
            # since a rotated character may itself be another class (Omniglot's rotations).
            images = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(ROTATIONS)])
        features = self.features(images)  # [B or 4B, F]
        logits = self.classifier(features[:n])  # [B, n_classes]
        smoothing = self.settings.label_smoothing
        class_loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        loss = class_loss
        terms = {"train/class_loss": class_loss.detach()}
        if self.rotation_head is not None:
            turns = torch.arange(ROTATIONS, device=labels.device).repeat_interleave(n)  # [4B]
            rotation_loss = F.cross_entropy(self.rotation_head(features), turns)
            loss = loss + self.settings.rotation_weight * rotation_loss
            terms["train/rotation_loss"] = rotation_loss.detach()
        terms["train/loss"] = loss.detach()
        terms["train/acc"] = (logits.argmax(-1) == labels).float().mean()
        self.log_dict(terms, prog_bar=False)
        return loss

    def configure_optimizers(self):
        s = self.settings
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=s.lr,
            momentum=s.momentum,
            nesterov=s.momentum > 0,
            weight_decay=s.weight_decay,
        )
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        scheduler = build_scheduler(optimizer, "cosine", s.warmup_steps, max_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- validation: few-shot accuracy of the embedding ----------------------------------------

    def validation_step(self, batch: Episode, batch_idx: int) -> None:
        logits = nearest_centroid_logits(self, batch)
        self.val_acc.update(episode_accuracy(logits, batch.query_y))

    def on_validation_epoch_end(self) -> None:
        mean, ci95, _ = self.val_acc.compute()
        self.val_acc.reset()
        self.log_dict({"val/acc": mean, "val/acc_ci95": ci95}, prog_bar=True, sync_dist=True)

    # -- checkpoints -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "format": 1,
            "kind": KIND,
            "version": __version__,
            "state_dict_sha256": state_digest(checkpoint["state_dict"]),
            "config": self.run_config,
            "rng": {"cpu": torch.get_rng_state()},
        }
        if self.precision is not None:
            checkpoint[CHECKPOINT_KEY]["backbone_precision"] = precision.as_record(self.precision)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stored = checkpoint.get(CHECKPOINT_KEY, {})
        self.run_config = stored.get("config")
        if "cpu" in stored.get("rng", {}):
            torch.set_rng_state(stored["rng"]["cpu"])


def nearest_centroid_logits(model: Pretrainer, episode: Episode) -> Tensor:
    """Negative squared distances of the L2-normalised query features to the class means of
    the L2-normalised support features: [B, N*Q, N]."""
    n_support = episode.support_y.shape[1]
    both = torch.cat([episode.support_x, episode.query_x], dim=1)  # [B, N*(K+Q), ...]
    features = F.normalize(model.features(both.flatten(0, 1)), dim=-1)
    features = features.view(*both.shape[:2], -1)
    support, query = features.split([n_support, both.shape[1] - n_support], dim=1)
    centroids = prototypes(support, episode.support_y, n_way_of(episode))  # [B, N, F]
    return -squared_distances(query, centroids)


def read_pretrain_checkpoint(ckpt_path: str | Path) -> dict:
    """The checkpoint, read safely (read_checkpoint) and refused unless leo-pretrain wrote it."""
    checkpoint = read_checkpoint(ckpt_path)
    if checkpoint[CHECKPOINT_KEY].get("kind") != KIND:
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} is a leo-lightning checkpoint but not one written by "
            "leo-pretrain (a meta-training checkpoint of leo-train?); pass the "
            "checkpoints/last.ckpt or best-*.ckpt of a leo-pretrain run"
        )
    return checkpoint


def pretrained_backbone(
    ckpt_path: str | Path, config_dirs: tuple[str | Path, ...] = ()
) -> tuple[nn.Module, dict, dict]:
    """The backbone of a `leo-pretrain` checkpoint with its trained weights, in eval mode,
    with the checkpoint's hyper-parameters and stored record. Checked first: the file is a
    leo-lightning checkpoint, intact, written by `leo-pretrain`, and its backbone's class is one
    the configs name (nothing is built from a foreign `_target_`)."""
    checkpoint = read_pretrain_checkpoint(ckpt_path)
    stored = checkpoint[CHECKPOINT_KEY]
    hparams = checkpoint.get("hyper_parameters") or {}
    check_stored_targets(hparams.get("backbone"), "backbone", str(ckpt_path), config_dirs)
    backbone = instantiate(hparams["backbone"])
    prefix = "backbone."
    weights = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    backbone.load_state_dict(weights)
    return backbone.eval(), hparams, stored
