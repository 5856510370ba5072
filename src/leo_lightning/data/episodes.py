"""Datasets of episodes: a fixed seeded list (val/test) and an endless stream (train)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from leo_lightning.data.augment import Augmentation, augment_episode
from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.episode import Episode
from leo_lightning.data.sampling import (
    episode_generator,
    sample_episode,
    sample_episode_and_classes,
)


@dataclass(frozen=True)
class EpisodeShape:
    n_way: int
    k_shot: int
    n_query: int


class FixedEpisodes(Dataset):
    """Episode i is always the same tensor, for every run, strategy, rank and worker count.

    ``within_group``: every episode's classes come from one group of the pool (see
    ``sample_episode``); the pool must have groups."""

    def __init__(
        self,
        pool: ClassPool,
        shape: EpisodeShape,
        seed: int,
        split: str,
        length: int,
        within_group: bool = False,
    ):
        self.pool, self.shape, self.seed, self.split, self.length = pool, shape, seed, split, length
        self.within_group = within_group

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Episode:
        return self.episode_and_classes(index)[0]

    def episode_and_classes(self, index: int) -> tuple[Episode, torch.Tensor]:
        """Episode ``index`` and the pool class behind each of its labels ([N] long, entry j:
        label j), from the same draws; for reading errors by class, alphabet or rotation."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        g = episode_generator(self.seed, self.split, index)
        shape = _astuple(self.shape)
        episode, classes = sample_episode_and_classes(self.pool, *shape, g, self.within_group)
        return episode._replace(index=torch.tensor(index)), classes

    def classes(self, index: int) -> torch.Tensor:
        """[N] long: the pool class behind each label of episode ``index``."""
        return self.episode_and_classes(index)[1]


class EpisodeStream(IterableDataset):
    """Endless training episodes, numbered globally so that the stream does not depend on the
    number of DataLoader workers and never repeats an episode across ranks.

    Global batch t of rank r holds episodes ((t * batch_size + b) * world_size + r), b < batch_size.
    DataLoader worker w produces the batches t = w, w + W, ... which is exactly the order in which
    a DataLoader with W workers hands them out, so the stream is the same for any W.
    ``start_batch`` moves the stream forward, for resuming. ``augment`` (data/augment) distorts
    each episode's images with random numbers from that episode's own generator, so augmented
    episodes keep all of these properties.
    """

    def __init__(
        self,
        pool: ClassPool,
        shape: EpisodeShape,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        augment: Augmentation | None = None,
    ):
        self.pool, self.shape, self.seed, self.batch_size = pool, shape, seed, batch_size
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.augment = augment

    def episode(self, batch: int, position: int) -> Episode:
        index = (batch * self.batch_size + position) * self.world_size + self.rank
        g = episode_generator(self.seed, "train", index)
        episode = sample_episode(self.pool, *_astuple(self.shape), generator=g)
        if self.augment is not None:  # after the sampling draws: the same classes and examples
            episode = augment_episode(episode, self.augment, g)
        return episode._replace(index=torch.tensor(index))

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        batch = self.start_batch + worker
        while True:
            for position in range(self.batch_size):
                yield self.episode(batch, position)
            batch += n_workers


def _astuple(shape: EpisodeShape) -> tuple[int, int, int]:
    return shape.n_way, shape.k_shot, shape.n_query


__all__ = ["EpisodeShape", "EpisodeStream", "FixedEpisodes"]
