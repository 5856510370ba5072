"""Datasets, episode sampling and the episodic DataModule."""

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.datamodule import EpisodeSource, EpisodicDataModule
from leo_lightning.data.episode import Episode
from leo_lightning.data.folder import FolderSource
from leo_lightning.data.leo_embeddings import LEOEmbeddingSource
from leo_lightning.data.omniglot import OmniglotSource

__all__ = [
    "ClassPool",
    "Episode",
    "EpisodeSource",
    "EpisodicDataModule",
    "FolderSource",
    "LEOEmbeddingSource",
    "OmniglotSource",
]
