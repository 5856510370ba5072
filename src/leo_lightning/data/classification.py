"""Plain labelled batches of the training classes, for pretraining a backbone by classification.

LEO's own protocol (Rusu et al., 2019) first trains the backbone as an ordinary classifier over
every meta-training class, then meta-learns on its frozen features. The batches come from the
same `ClassPool` the episodes of the training split are drawn from, so only the training
classes can reach them (the validation and test pools are never read here), and with the same
augmentation as training episodes.

Like the episode stream, the batches are a function of (seed, batch number) alone: batch t of
rank r is slice (t * world_size + r) of a seeded shuffle of every example, one new shuffle per
pass over the data, so a resumed run continues the exact sequence and ranks never share an
example within a pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from leo_lightning.data.augment import Augmentation
from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.sampling import episode_generator


def examples_and_labels(pool: ClassPool) -> tuple[Tensor, Tensor]:
    """Rows of `pool.data` and the class of each ([M] long each), from the padded index."""
    valid = pool.index >= 0  # [n_classes, max_count]
    labels = valid.nonzero()[:, 0]
    return pool.index[valid], labels


class ClassificationBatches(IterableDataset):
    """Endless (images [B, *example_shape], labels [B]) batches of one pool's classes."""

    def __init__(
        self,
        pool: ClassPool,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        augment: Augmentation | None = None,
    ):
        self.pool, self.batch_size, self.seed = pool, batch_size, seed
        self.rank, self.world_size, self.start_batch = rank, world_size, start_batch
        self.augment = augment
        self.rows, self.labels = examples_and_labels(pool)
        self._shuffle: tuple[int, Tensor] | None = None  # (pass, its order of the rows)
        # Whole batches per pass for every rank: the tail of a shuffle is dropped, never padded.
        self.batches_per_pass = len(self.rows) // (batch_size * world_size)
        if self.batches_per_pass == 0:
            raise ValueError(
                f"pretrain.batch_size={batch_size} x {world_size} process(es) is more than the "
                f"{len(self.rows)} training examples; lower pretrain.batch_size"
            )

    def batch(self, number: int) -> tuple[Tensor, Tensor]:
        """Batch `number` of this rank (0, 1, ...), the same for any worker count and on resume."""
        passed, position = divmod(number, self.batches_per_pass)
        order = self._order(passed)
        start = (position * self.world_size + self.rank) * self.batch_size
        picked = order[start : start + self.batch_size]
        images = self.pool.data[self.rows[picked]]
        if self.augment is not None:
            # each rank its own draws: their batches differ, so must their distortions
            key = f"pretrain-augment/{self.rank}"
            images = self.augment(images, episode_generator(self.seed, key, number))
        return images, self.labels[picked]

    def _order(self, passed: int) -> Tensor:
        """The shuffle of pass `passed`, drawn once per pass (not once per batch)."""
        if self._shuffle is None or self._shuffle[0] != passed:
            generator = episode_generator(self.seed, "pretrain", passed)
            self._shuffle = (passed, torch.randperm(len(self.rows), generator=generator))
        return self._shuffle[1]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        number = self.start_batch + worker
        while True:
            yield self.batch(number)
            number += n_workers
