"""Datasets, episode sampling and the episodic DataModule."""

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.datamodule import EpisodeSource, EpisodicDataModule
from leo_lightning.data.episode import Episode

__all__ = ["ClassPool", "Episode", "EpisodeSource", "EpisodicDataModule"]
