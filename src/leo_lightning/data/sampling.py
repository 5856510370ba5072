"""Episode sampling: a pure function of (pool, episode shape, seed key).

Every episode is drawn from its own generator, seeded from a stable hash of the split's seed,
the split name and the episode's index. That makes the fixed validation and test lists
identical across runs, strategies, processes and DataLoader worker counts, and lets the endless
training stream be split between ranks and workers (and resumed) by index alone.
"""

from __future__ import annotations

import hashlib

import torch

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.episode import Episode


def episode_generator(seed: int, split: str, index: int) -> torch.Generator:
    """A generator whose state depends only on (seed, split, index), never on Python's hash()."""
    digest = hashlib.blake2b(f"{seed}/{split}/{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))


def sample_episode(
    pool: ClassPool,
    n_way: int,
    k_shot: int,
    n_query: int,
    generator: torch.Generator,
    within_group: bool = False,
) -> Episode:
    """N classes without replacement, K + Q distinct examples of each, labels permuted.

    ``within_group``: the N classes all come from one group of the pool, drawn uniformly from
    the groups that hold at least N classes (smaller ones are never drawn)."""
    return sample_episode_and_classes(pool, n_way, k_shot, n_query, generator, within_group)[0]


def sample_episode_and_classes(
    pool: ClassPool,
    n_way: int,
    k_shot: int,
    n_query: int,
    generator: torch.Generator,
    within_group: bool = False,
) -> tuple[Episode, torch.Tensor]:
    """``sample_episode``'s episode (the same draws) and the pool class of each of its labels
    ([N] long: entry j is the class that label j stands for), for analysing errors by class."""
    if within_group:
        classes = _classes_of_one_group(pool, n_way, generator)
    else:
        classes = torch.randperm(pool.n_classes, generator=generator)[:n_way]
    rows = pool.index[classes]  # [N, max_count], -1 padded
    keys = torch.rand(rows.shape, generator=generator).masked_fill_(rows < 0, 2.0)
    picked = rows.gather(1, keys.argsort(dim=1)[:, : k_shot + n_query])  # [N, K+Q]
    labels = torch.randperm(n_way, generator=generator)  # new label of each drawn class
    support, query = picked[:, :k_shot].reshape(-1), picked[:, k_shot:].reshape(-1)
    episode = Episode(
        support_x=pool.data[support],
        support_y=labels.repeat_interleave(k_shot),
        query_x=pool.data[query],
        query_y=labels.repeat_interleave(n_query),
    )
    return episode, classes[labels.argsort()]


def _classes_of_one_group(pool: ClassPool, n_way: int, generator: torch.Generator) -> torch.Tensor:
    eligible = (pool.group_sizes() >= n_way).nonzero().flatten()
    group = eligible[torch.randint(len(eligible), (), generator=generator)]
    members = (pool.groups == group).nonzero().flatten()
    return members[torch.randperm(len(members), generator=generator)[:n_way]]
