"""The episodic LightningDataModule that every dataset plugs into through a `source`."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from leo_lightning.data.augment import Augmentation
from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.episodes import EpisodeShape, EpisodeStream, FixedEpisodes
from leo_lightning.data.settings import EpisodeSettings
from leo_lightning.errors import DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class EpisodeSource(Protocol):
    """A dataset: where its files come from and how they become one ClassPool per split."""

    def prepare(self) -> None:
        """Download, decode or render once and cache on disk (runs on one process per node)."""

    def load(self) -> dict[str, ClassPool]:
        """The cached splits, keyed 'train', 'val' and 'test' (runs on every process)."""


class EpisodicDataModule(L.LightningDataModule):
    """N-way K-shot episodes from any `EpisodeSource`.

    Training draws an endless seeded stream (seeded by the run's `train_seed`, different on every
    rank); validation and test use fixed lists seeded by `seed` alone, so that every run, every
    strategy and every process is scored on the same episodes.

    `augment` (data/augment) distorts the training episodes' images, never validation or test
    ones. `within_alphabet`: every validation and test episode takes its N classes from one
    group of the split's classes (Omniglot: one alphabet in one rotation; see OmniglotSource).
    `trainval`: meta-train on the training and validation classes together, and validate
    never (episodes of classes seen in training cannot select a checkpoint).
    """

    def __init__(
        self,
        source: EpisodeSource,
        augment: Augmentation | None = None,
        **settings: Any,
    ):
        """`settings`: the episode settings by name (data/settings.py), each one not given at
        its declared default."""
        super().__init__()
        s = EpisodeSettings.from_mapping(settings)
        self.source = source
        self.image_size, self.channels = s.image_size, s.channels
        self.shape = EpisodeShape(s.n_way, s.k_shot, s.n_query)
        self.meta_batch_size, self.eval_batch_size = s.meta_batch_size, s.eval_batch_size
        self.val_episodes, self.test_episodes = s.val_episodes, s.test_episodes
        self.seed, self.train_seed = s.seed, s.train_seed
        self.num_workers, self.pin_memory = s.num_workers, s.pin_memory
        self.augment, self.within_alphabet, self.trainval = augment, s.within_alphabet, s.trainval
        self.pools: dict[str, ClassPool] = {}

    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        if not self.pools:
            self.pools = self._load_pools()
        if self.within_alphabet:
            for split in self._within_alphabet_splits(stage):
                self._check_groups(split, self.pools[split])
        self._check_model_input_shape()

    def _load_pools(self) -> dict[str, ClassPool]:
        pools = self.source.load()
        missing = [s for s in SPLITS if s not in pools]
        if missing:
            raise DataError(f"data source {type(self.source).__name__} has no split(s) {missing}")
        for split, pool in pools.items():
            self._check_example_shape(split, pool)
            pool.check_supports(split, self.shape.n_way, self.shape.k_shot + self.shape.n_query)
            log.info("split %-5s: %d classes, %d examples", split, pool.n_classes, len(pool.data))
        if self.augment is not None:
            self._check_augmentable(pools["train"])
            log.info("training episodes are augmented: %r", self.augment)
        if self.trainval:
            pools = {**pools, "train": ClassPool.concat([pools["train"], pools["val"]])}
            log.info(
                "data.trainval=true: meta-training on train + val, %d classes; no validation",
                pools["train"].n_classes,
            )
        return pools

    def _within_alphabet_splits(self, stage: str | None) -> tuple[str, ...]:
        """The splits whose within-alphabet episodes this stage draws: testing a checkpoint
        draws test episodes only (a 20-way model can be tested within the alphabets of the test
        split even if no validation alphabet has 20 characters); fitting checks the test split
        too, so that a run that cannot be tested fails before it trains, not after."""
        return ("test",) if stage == "test" else self._eval_splits()

    def _eval_splits(self) -> tuple[str, ...]:
        """The splits that episodes are evaluated on: with trainval, validation is training."""
        return ("test",) if self.trainval else ("val", "test")

    def _check_groups(self, split: str, pool: ClassPool) -> None:
        pool.check_groups(split, self.shape.n_way, "data.within_alphabet")
        sizes = pool.group_sizes()
        small = [pool.group_names[g] for g in (sizes < self.shape.n_way).nonzero().flatten()]
        if small:
            log.info(
                "data.within_alphabet: split %s never draws from %d group(s) with fewer than "
                "data.n_way=%d classes: %s",
                split,
                len(small),
                self.shape.n_way,
                ", ".join(small),
            )

    def _check_augmentable(self, pool: ClassPool) -> None:
        if pool.data.dtype != torch.uint8 or pool.data.ndim != 4:
            raise DataError(
                f"data.augment ({type(self.augment).__name__}) distorts uint8 images [C, H, W], "
                f"but the training examples are {pool.data.dtype} of shape "
                f"{list(pool.example_shape)} (pre-computed features?); use data/augment=none"
            )

    def _check_example_shape(self, split: str, pool: ClassPool) -> None:
        if self.image_size is None:
            return
        expected = (self.channels, self.image_size, self.image_size)
        if pool.example_shape != expected:
            raise DataError(
                f"split '{split}' holds examples of shape {pool.example_shape}, but "
                f"data.channels/data.image_size ask for {expected}"
            )

    def _check_model_input_shape(self) -> None:
        """The model being fit or tested must take this data's examples: otherwise the first
        batch fails deep in the network ("mat1 and mat2 shapes cannot be multiplied"), after
        the data was prepared. Runs at every setup (a new Trainer may bring another model)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        model_shape = getattr(module, "hparams", {}).get("input_shape")
        data_shape = self.pools["train"].example_shape
        if model_shape is None or tuple(model_shape) == data_shape:
            return
        if self.image_size is not None:
            keys = f"data.channels={self.channels}, data.image_size={self.image_size}"
        else:
            keys = f"the examples of data.source ({type(self.source).__name__})"
        raise DataError(
            f"model.input_shape={list(model_shape)} does not match the data: its examples have "
            f"shape {list(data_shape)} ({keys}); make them agree"
        )

    # -- loaders ---------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank_and_world_size()
        stream = EpisodeStream(
            self.pools["train"],
            self.shape,
            seed=self.train_seed,
            batch_size=self.meta_batch_size,
            rank=rank,
            world_size=world_size,
            start_batch=self._batches_trained(),
            augment=self.augment,
        )
        return self._loader(stream, self.meta_batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if self.trainval:  # no validation loader: Lightning then skips validation
            return []
        return self._fixed_loader("val", self.val_episodes)

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader("test", self.test_episodes)

    def _fixed_loader(self, split: str, length: int) -> DataLoader:
        """Each rank takes every world_size-th episode: no episode is lost or seen twice (a
        DistributedSampler would pad with repeats), and the metrics sum exactly over ranks."""
        episodes = self.fixed_episodes(split, length)
        rank, world_size = self._rank_and_world_size()
        if world_size > 1:
            episodes = Subset(episodes, range(rank, length, world_size))
        return self._loader(episodes, self.eval_batch_size)

    def fixed_episodes(self, split: str, length: int) -> FixedEpisodes:
        """The first ``length`` fixed episodes of ``split``, as validation and test draw them
        (after ``setup``)."""
        return FixedEpisodes(
            self.pools[split], self.shape, self.seed, split, length, self.within_alphabet
        )

    def _batches_trained(self) -> int:
        """Where a resumed run continues the stream: the training batches already processed
        (restored from the checkpoint's loop state; skipped updates count as processed).
        Processed, not completed: a checkpoint written at the end of a training batch (the
        step interval of last.ckpt) has that batch processed but not yet marked completed."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.total.processed

    def _rank_and_world_size(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def _loader(self, dataset, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # Episodes carry their own seeds; a private generator keeps the loader from drawing
            # on the global RNG, which a resumed run restores to the uninterrupted sequence.
            generator=torch.Generator(),
        )
