"""Structured schemas for the Hydra configs in conf/.

Each YAML file lists its schema first in its defaults list, so a typo in a key or a value of
the wrong type fails at composition, with Hydra naming the key, before any work starts.
Keys that hold a `_target_` are typed here too; only truly open-ended nodes are `Any`.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from leo_lightning.config.run_label import register_run_label_resolver
from leo_lightning.config.settings_help import register_help_resolver
from leo_lightning.data.augment import AffineSettings
from leo_lightning.data.combined import CombinedSource
from leo_lightning.data.embeddings import EmbeddingSource
from leo_lightning.data.folder import FolderSource
from leo_lightning.data.glyphs import GlyphSource
from leo_lightning.data.leo_embeddings import LEOEmbeddingSource
from leo_lightning.data.omniglot import OmniglotSource
from leo_lightning.data.settings import EpisodeSettings
from leo_lightning.declared import setting
from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.pretrain_settings import PretrainSettings
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


def source_schema(source: type) -> type:
    """The schema of a data source's config, made from its class's signature, where each of its
    keys and defaults is written once: a key it does not take, or a value of the wrong type,
    fails at composition. A parameter without a default is required (MISSING)."""
    hints = typing.get_type_hints(source.__init__)
    fields = [("_target_", str, field(default=f"{source.__module__}.{source.__qualname__}"))]
    for parameter in list(inspect.signature(source.__init__).parameters.values())[1:]:
        kind = _config_type(hints.get(parameter.name, Any))
        if parameter.default is inspect.Parameter.empty:
            default = field(default=MISSING)
        elif isinstance(parameter.default, tuple | list):  # a sequence: a list in a config
            default = _field_default(list(parameter.default))
        else:
            default = field(default=parameter.default)
        fields.append((parameter.name, kind, default))
    return make_dataclass(f"{source.__name__}Schema", fields)


def _config_type(hint: Any) -> Any:
    """A Python annotation as a type OmegaConf reads: `X | None` -> Optional[X]; a union with
    str (`str | os.PathLike`) -> str, a config holds paths as strings; Sequence[X] -> list[X];
    Mapping[K, V] -> dict[K, V]."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        kind = str if str in rest else (_config_type(rest[0]) if len(rest) == 1 else Any)
        return Optional[kind] if type(None) in args else kind
    if typing.get_origin(hint) in (list, tuple, collections.abc.Sequence):
        return list[args[0]] if args else list[Any]
    if typing.get_origin(hint) in (dict, collections.abc.Mapping):
        return dict[args[0], args[1]] if args else dict[str, Any]
    return hint


def _data_schema(source: type) -> type:
    """The data config of one source: the episode settings and that source's schema."""
    schema = source_schema(source)
    return make_dataclass(
        f"{source.__name__}DataSchema",
        [("source", schema, field(default_factory=schema))],
        bases=(DataSchema,),
    )


# The data config of each source, by the name its YAML files give the schema (schema_<name>)
SOURCES = {
    "glyphs": GlyphSource,
    "omniglot": OmniglotSource,
    "folder": FolderSource,
    "leo_embeddings": LEOEmbeddingSource,
    "embeddings": EmbeddingSource,
    "combined": CombinedSource,
}


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
    # an old spelling of a setting still composes; validation moves it (spec.MovedKey)
    fields += [
        (moved.old.removeprefix("strategy."), Optional[Any], field(default=None))
        for moved in strategy.spec.moved
        if moved.old.startswith("strategy.")
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
    """Lightning's Trainer as this project runs it (its own defaults differ from Lightning's:
    the training episodes are one endless stream, so the budget is in steps)."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = setting("auto", "cpu, gpu, mps or auto")
    devices: Any = setting(1, "devices per node")
    num_nodes: int = setting(1, "nodes")
    strategy: Any = setting("auto", "Lightning's distribution strategy (ddp, ...), not LEO's")
    precision: Any = setting(
        "32-true", "Lightning's precision; the backbone's autocast is model.backbone_autocast"
    )
    max_steps: int = setting(1000, "meta-training steps (outer updates)")
    max_time: Optional[str] = setting(
        None,
        'or a wall-clock budget "DD:HH:MM:SS" (validation included): training stops at '
        "whichever of max_steps / max_time comes first",
    )
    val_check_interval: Any = setting(250, "validate every this many meta-batches")
    check_val_every_n_epoch: Optional[int] = setting(
        None, "one endless epoch: validate by steps only"
    )
    num_sanity_val_steps: int = setting(0, "validation batches before training")
    log_every_n_steps: int = setting(10, "meta-steps between logged training metrics")
    limit_train_batches: Any = setting(None, "null: the endless stream")
    limit_val_batches: Any = setting(None, "null: all val_episodes")
    limit_test_batches: Any = setting(None, "null: all test_episodes")
    inference_mode: bool = setting(
        False, "false: the inner loop needs autograd during validation and test"
    )
    deterministic: Any = setting(False, "Lightning's deterministic algorithms switch")
    enable_progress_bar: bool = setting(True, "the progress bar (callbacks.progress_bar)")
    enable_model_summary: bool = setting(
        False,
        "Lightning's table has a FLOPs column of zeros (no example input); the run logs its "
        "parameter counts itself",
    )
    use_distributed_sampler: bool = setting(
        False, "false: the DataModule shards episodes between ranks itself"
    )
    sync_batchnorm: bool = setting(False, "BatchNorm statistics over all ranks (trainer=ddp)")
    default_root_dir: Optional[str] = setting(None, "Lightning's own files; the run folder")


@dataclass
class TrainSchema:
    """The run-level keys of `leo-train`."""

    task_name: str = setting("train", "names the run's log file")
    seed: int = setting(42, "model init, dropout, latent sampling and the training episode stream")
    ckpt_path: Optional[str] = setting(
        None,
        "resume from this checkpoint (a .ckpt path), or `last`: with hydra.run.dir=<run>, that "
        "run's checkpoints/last.ckpt, else the newest one of a run of the same command",
    )
    overwrite: bool = setting(
        False, "true: delete a non-empty run folder first (only one these commands wrote)"
    )
    test: bool = setting(True, "after training, test the best checkpoint on the test episodes")
    optimized_metric: str = setting(
        "best_val_acc", "the key of results.json that train returns to a sweeper"
    )
    data: Any = MISSING
    model: Any = MISSING
    strategy: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING


@dataclass
class EvalSchema:
    """The run-level keys of `leo-eval`."""

    task_name: str = setting("eval", "names the run's log file")
    seed: int = setting(42, "only for strategies that draw random numbers at test time")
    ckpt_path: str = MISSING  # required: the checkpoint to test
    overwrite: bool = setting(False, "true: delete a non-empty hydra.run.dir first")
    batch_norm: Optional[str] = setting(
        None,
        "LEO strategies: running or batch (transductive, per episode) statistics at test; "
        "null: the mode the checkpoint was trained with",
    )
    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    paths: Any = MISSING


@dataclass
class PretrainSchema(PretrainSettings):
    """`pretrain.<key>`: the settings declared in training/pretrain_settings.py."""


@dataclass
class PretrainModelSchema:
    """`model` of `leo-pretrain`: only the network it pretrains and the examples' shape."""

    backbone: Any = MISSING
    input_shape: list[int] = MISSING


@dataclass
class PretrainRunSchema:
    """The run-level keys of `leo-pretrain`."""

    task_name: str = setting("pretrain", "names the run's log file")
    seed: int = setting(42, "model init and the order of the training batches")
    ckpt_path: Optional[str] = setting(
        None,
        "resume from this leo-pretrain checkpoint, or `last` (as leo-train's ckpt_path)",
    )
    overwrite: bool = setting(
        False, "true: delete a non-empty run folder first (only one these commands wrote)"
    )
    optimized_metric: str = setting(
        "best_val_acc", "the key of results.json that pretrain returns to a sweeper"
    )
    data: Any = MISSING
    model: PretrainModelSchema = field(default_factory=PretrainModelSchema)
    pretrain: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    callbacks: Any = None
    paths: Any = MISSING


@dataclass
class EmbedSchema:
    """The run-level keys of `leo-embed`."""

    task_name: str = setting("embed", "names the run's log file")
    ckpt_path: str = MISSING  # required: a leo-pretrain checkpoint
    views: int = setting(
        1,
        "1: each example's own feature; K > 1: the mean over the plain image and K - 1 "
        "distortions by the data's augmentation (needs data/augment=affine)",
    )
    batch_size: int = setting(256, "examples per forward pass")
    seed: int = setting(0, "draws the distortions of views > 1")
    leo_layout: Optional[str] = setting(
        None,
        "a dataset name: also write the original LEO's pickle files, "
        "<run>/embeddings/leo_layout/<name>/<center|multiview>/<split>_embeddings.pkl, which "
        "data=leo_embeddings data.source.root=<run>/embeddings/leo_layout "
        "data.source.dataset=<name> reads (as does code written for the original's files)",
    )
    overwrite: bool = setting(False, "true: delete a non-empty hydra.run.dir first")
    data: Any = MISSING
    paths: Any = MISSING


@dataclass
class PredictSchema:
    """The run-level keys of `leo-predict`."""

    task_name: str = setting("predict", "names the run's log file")
    ckpt_path: str = MISSING  # required: a checkpoint written by leo-train
    support_dir: str = MISSING  # required: one subfolder per class, with K >= 1 images each
    query_dir: str = MISSING  # required: the images to classify
    invert: Optional[bool] = setting(
        None, "null: invert grayscale images with a light background; true/false: force"
    )
    overwrite: bool = setting(False, "true: delete a non-empty hydra.run.dir first")
    paths: Any = MISSING


def register_configs() -> None:
    """Make the schemas visible to Hydra; call before composing any config.

    Every schema sits at the root of the config tree, outside the config groups, so that
    `--help` does not list it as a pickable option of its group; the group's configs name it
    by its absolute path (`- /schema_glyphs` in conf/data/glyphs.yaml)."""
    cs = ConfigStore.instance()
    register_help_resolver(TrainSchema, TrainerSchema)  # --help's settings (hydra/default.yaml)
    register_run_label_resolver()  # TensorBoard's run name (logger/tensorboard.yaml)
    cs.store(name="schema_train", node=TrainSchema)
    cs.store(name="schema_eval", node=EvalSchema)
    cs.store(name="schema_predict", node=PredictSchema)
    cs.store(name="schema_pretrain_run", node=PretrainRunSchema)
    cs.store(name="schema_pretrain", node=PretrainSchema)
    cs.store(name="schema_embed", node=EmbedSchema)
    for name, source in SOURCES.items():  # schema_glyphs, ... for conf/data/<name>.yaml
        cs.store(name=f"schema_{name}", node=_data_schema(source))
        # source_glyphs, ...: one source's keys alone (data=combined holds several)
        cs.store(name=f"source_{name}", node=source_schema(source))
    cs.store(name="schema_augment_none", node=NoAugmentSchema)
    cs.store(name="schema_augment_affine", node=AffineAugmentSchema)
    cs.store(name="schema_leo", node=LEOSchema)
    cs.store(name="schema_strategy", node=StrategySchema)
    for strategy in built_in():  # schema_<name>, for conf/strategy/<name>.yaml
        cs.store(name=f"schema_{strategy.spec.name}", node=strategy_schema(strategy))
    cs.store(name="schema_trainer", node=TrainerSchema)
