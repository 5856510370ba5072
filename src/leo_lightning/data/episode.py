"""The one episode type of the project.

An episode is a tuple of four tensors. Unbatched (as a dataset yields it) the leading dimension
is the example; the DataLoader's default collate stacks ``meta_batch_size`` of them into a
leading task dimension, so the same type serves a single task and a meta-batch.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class Episode(NamedTuple):
    """Support and query sets of one N-way K-shot task (or a batch of B tasks).

    Images stay uint8 until they reach the model (cheap to move between processes and devices);
    pre-computed features are float. Labels are 0..N-1, remapped at random per task.
    """

    support_x: Tensor  # [B, N*K, *example_shape]
    support_y: Tensor  # [B, N*K]
    query_x: Tensor  # [B, N*Q, *example_shape]
    query_y: Tensor  # [B, N*Q]
    # The episode's number in its list or stream (0-dim, or [B] batched): per-task randomness is
    # seeded from it, so a task's result does not depend on the batch or the rank it lands in.
    # None for an episode built by hand (e.g. scripts/predict.py).
    index: Tensor | None = None

    def to(self, *args, **kwargs) -> Episode:
        return Episode(*(None if t is None else t.to(*args, **kwargs) for t in self))
