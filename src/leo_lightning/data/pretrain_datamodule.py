"""The data of `leo-pretrain`: labelled batches of the training classes, and the same fixed
validation episodes that meta-training validates on.

It wraps the run's `EpisodicDataModule` (built from `data=...` as for meta-training), so every
data source, its checks and its augmentation work unchanged, and the few-shot validation of the
pretrained embedding is scored on exactly the episodes a meta-trained model would be.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.classification import ClassificationBatches
from leo_lightning.data.datamodule import EpisodicDataModule


class PretrainDataModule(L.LightningDataModule):
    def __init__(self, episodes: EpisodicDataModule, batch_size: int, seed: int):
        super().__init__()
        self.episodes, self.batch_size, self.seed = episodes, batch_size, seed

    def prepare_data(self) -> None:
        self.episodes.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.episodes.trainer = self.trainer  # its ranks and its fixed validation loader
        self.episodes.setup(stage)

    @property
    def train_pool(self) -> ClassPool:
        """The classes pretraining sees: the training split's only (with data.trainval, also
        the validation classes, which the data then treats as training classes)."""
        if not self.episodes.pools:
            self.episodes.setup("fit")
        return self.episodes.pools["train"]

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        done = trainer.fit_loop.epoch_loop.batch_progress.total.processed if trainer else 0
        batches = ClassificationBatches(
            self.train_pool,
            self.batch_size,
            self.seed,
            rank=rank,
            world_size=world_size,
            start_batch=done,  # a resumed run continues the exact sequence of batches
            augment=self.episodes.augment,
        )
        return DataLoader(
            batches,
            batch_size=None,  # the stream yields whole batches
            num_workers=self.episodes.num_workers,
            pin_memory=self.episodes.pin_memory,
            persistent_workers=self.episodes.num_workers > 0,
            generator=torch.Generator(),
        )

    def val_dataloader(self) -> DataLoader | list:
        return self.episodes.val_dataloader()
