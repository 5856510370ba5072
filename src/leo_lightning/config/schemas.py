"""Structured schemas for the Hydra configs in conf/.

Each YAML file lists its schema first in its defaults list, so a typo in a key or a value of
the wrong type fails at composition, with Hydra naming the key, before any work starts.
Keys that hold a `_target_` are typed here too; only truly open-ended nodes are `Any`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from leo_lightning.config.settings_help import register_help_resolver
from leo_lightning.data.augment import AffineSettings
from leo_lightning.data.settings import EpisodeSettings
from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.settings import LEOSettings

# OmegaConf needs typing.Optional, not `X | None`, in dataclass annotations on Python 3.10.
# ruff: noqa: UP045


@dataclass
class DataSchema(EpisodeSettings):
    """The episode settings (declared in data/settings.py) and the parts a config names."""

    _target_: str = "leo_lightning.data.EpisodicDataModule"
    source: Any = MISSING
    augment: Any = None  # the data/augment group: AffineAugmentSchema or NoAugmentSchema


@dataclass
class NoAugmentSchema:
    _target_: str = "leo_lightning.data.augment.no_augmentation"


@dataclass
class AffineAugmentSchema(AffineSettings):
    _target_: str = "leo_lightning.data.augment.RandomAffine"


@dataclass
class GlyphSourceSchema:
    _target_: str = "leo_lightning.data.glyphs.GlyphSource"
    root: str = MISSING
    image_size: int = 28
    seed: int = 0
    train_classes: int = 3000
    val_classes: int = 300
    test_classes: int = 300
    examples_per_class: int = 20


@dataclass
class GlyphsDataSchema(DataSchema):
    source: GlyphSourceSchema = field(default_factory=GlyphSourceSchema)


@dataclass
class OmniglotSourceSchema:
    _target_: str = "leo_lightning.data.omniglot.OmniglotSource"
    root: str = MISSING
    cache_dir: Optional[str] = None
    image_size: int = 28
    rotations: bool = True
    split: str = "standard"
    background: str = "full"
    val_alphabets: list[str] = field(default_factory=list)
    test_alphabets: list[str] = field(default_factory=list)
    download: bool = False


@dataclass
class OmniglotDataSchema(DataSchema):
    source: OmniglotSourceSchema = field(default_factory=OmniglotSourceSchema)


@dataclass
class FolderSourceSchema:
    _target_: str = "leo_lightning.data.folder.FolderSource"
    root: str = MISSING
    cache_dir: Optional[str] = None
    image_size: int = 84
    channels: int = 3
    split: str = "auto"
    val_fraction: float = 0.16
    test_fraction: float = 0.2
    seed: int = 0
    invert: bool = False


@dataclass
class FolderDataSchema(DataSchema):
    source: FolderSourceSchema = field(default_factory=FolderSourceSchema)


@dataclass
class LEOEmbeddingSourceSchema:
    _target_: str = "leo_lightning.data.leo_embeddings.LEOEmbeddingSource"
    root: str = MISSING
    dataset: str = "miniImageNet"
    view: str = "center"


@dataclass
class LEOEmbeddingsDataSchema(DataSchema):
    source: LEOEmbeddingSourceSchema = field(default_factory=LEOEmbeddingSourceSchema)


@dataclass
class LEOSchema(LEOSettings):
    """The model's settings (declared in training/settings.py) and the parts a config names."""

    _target_: str = "leo_lightning.LEOModule"
    backbone: Any = MISSING
    input_shape: list[int] = MISSING


@dataclass
class StrategySchema:
    _target_: str = MISSING


def strategy_schema(strategy: type) -> type:
    """The schema of one strategy's config, made from its declared settings (strategies/spec.py):
    a key it does not have, or a value of the wrong type, fails at composition."""
    fields = [
        (key, _field_type(setting.default), _field_default(setting.default))
        for key, setting in strategy.spec.settings.items()
    ]
    return make_dataclass(f"{strategy.__name__}Schema", fields, bases=(StrategySchema,))


def _field_type(default: Any) -> Any:
    if isinstance(default, list):
        return list[type(default[0])] if default else list[Any]
    return type(default)


def _field_default(default: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default))
    return field(default=default)


@dataclass
class TrainerSchema:
    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    max_steps: int = 1000
    max_time: Optional[str] = None
    val_check_interval: Any = 250
    check_val_every_n_epoch: Optional[int] = None
    num_sanity_val_steps: int = 0
    log_every_n_steps: int = 10
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    inference_mode: bool = False
    deterministic: Any = False
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    use_distributed_sampler: bool = False
    sync_batchnorm: bool = False
    default_root_dir: Optional[str] = None


@dataclass
class TrainSchema:
    task_name: str = "train"
    seed: int = 42
    ckpt_path: Optional[str] = None  # a .ckpt path or "last" (run_dirs.py)
    overwrite: bool = False  # delete a non-empty run folder first (run_dirs.py)
    test: bool = True
    optimized_metric: str = "best_val_acc"
    data: Any = MISSING
    model: Any = MISSING
    strategy: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING


@dataclass
class EvalSchema:
    task_name: str = "eval"
    seed: int = 42
    ckpt_path: str = MISSING
    overwrite: bool = False
    batch_norm: Optional[str] = None
    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    paths: Any = MISSING


@dataclass
class PredictSchema:
    task_name: str = "predict"
    ckpt_path: str = MISSING
    support_dir: str = MISSING
    query_dir: str = MISSING
    invert: Optional[bool] = None
    overwrite: bool = False
    paths: Any = MISSING


def register_configs() -> None:
    """Make the schemas visible to Hydra; call before composing any config.

    Every schema sits at the root of the config tree, outside the config groups, so that
    `--help` does not list it as a pickable option of its group; the group's configs name it
    by its absolute path (`- /schema_glyphs` in conf/data/glyphs.yaml)."""
    cs = ConfigStore.instance()
    register_help_resolver()  # the strategies' part of --help (conf/hydra/default.yaml)
    cs.store(name="schema_train", node=TrainSchema)
    cs.store(name="schema_eval", node=EvalSchema)
    cs.store(name="schema_predict", node=PredictSchema)
    cs.store(name="schema_glyphs", node=GlyphsDataSchema)
    cs.store(name="schema_omniglot", node=OmniglotDataSchema)
    cs.store(name="schema_folder", node=FolderDataSchema)
    cs.store(name="schema_leo_embeddings", node=LEOEmbeddingsDataSchema)
    cs.store(name="schema_augment_none", node=NoAugmentSchema)
    cs.store(name="schema_augment_affine", node=AffineAugmentSchema)
    cs.store(name="schema_leo", node=LEOSchema)
    cs.store(name="schema_strategy", node=StrategySchema)
    for strategy in built_in():  # schema_<name>, for conf/strategy/<name>.yaml
        cs.store(name=f"schema_{strategy.spec.name}", node=strategy_schema(strategy))
    cs.store(name="schema_trainer", node=TrainerSchema)
