"""The episode settings, `data.<key>`, each declared once: its default and what it does.

EpisodicDataModule takes them by name and fills the rest from here; the config schema of every
data source is this class plus its `source` and `augment`; the data YAML files restate none of
them, only what is their dataset's own (image size, channels, a meta-batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from leo_lightning.declared import Declared, setting

# OmegaConf needs typing.Optional, not `X | None`, in dataclass annotations on Python 3.10.
# ruff: noqa: UP045


@dataclass
class EpisodeSettings(Declared):
    PREFIX = "data"

    image_size: Optional[int] = setting(None, "pixels per side (null: features, not images)")
    channels: Optional[int] = setting(None, "image channels (null: features, not images)")
    seed: int = setting(0, "draws the fixed val/test episode lists (and a dataset's own draws)")
    train_seed: int = setting(0, "seeds the endless training episode stream (the run's seed)")
    n_way: int = setting(5, "classes per task")
    k_shot: int = setting(1, "support examples per class")
    n_query: int = setting(15, "query examples per class")
    meta_batch_size: int = setting(4, "tasks per meta-training step")
    eval_batch_size: int = setting(8, "tasks per validation/test batch")
    val_episodes: int = setting(200, "fixed validation episodes")
    test_episodes: int = setting(1000, "fixed test episodes")
    num_workers: int = setting(0, "DataLoader worker processes (episodes are cheap indexing)")
    pin_memory: bool = setting(False, "page-locked host memory, for GPUs")
    within_alphabet: bool = setting(
        False,
        "true: each val/test episode's N classes come from one group (Omniglot: one alphabet "
        "in one rotation); data=omniglot only",
    )
    trainval: bool = setting(
        False,
        "true: meta-train on train + val classes (LEO's final runs): no validation, the test "
        "uses the last checkpoint",
    )
