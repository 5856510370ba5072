"""Test a trained checkpoint on the fixed test episodes of the data it was trained with."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from leo_lightning.config.compose import (
    with_data_overrides,
)
from leo_lightning.errors import ConfigError
from leo_lightning.jobs.common import build_trainer, format_accuracy, test_metrics, write_json
from leo_lightning.models import precision
from leo_lightning.strategies.base import LATENT_BATCH_NORM_MODES
from leo_lightning.strategies.catalog import built_in
from leo_lightning.strategies.spec import StrategySpec
from leo_lightning.training.checkpoints import CHECKPOINT_KEY, read_checkpoint
from leo_lightning.training.module import LEOModule
from leo_lightning.training.trusted_targets import check_stored_targets
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


def check_example_shape(data: DictConfig, input_shape: list[int]) -> None:
    """The images the data would give must be the model's: a 28 px model scored on 56 px
    images failed deep inside the backbone."""
    size, channels = data.get("image_size"), data.get("channels")
    if len(input_shape) != 3 or size is None or channels is None:
        return  # features: the DataModule checks their width against the data it loads
    if [channels, size, size] != list(input_shape):
        raise ConfigError(
            [
                f"data.image_size={size} data.channels={channels}: the checkpoint's model takes "
                f"{list(input_shape)} examples; leave data.image_size and data.channels at the "
                "checkpoint's values"
            ]
        )


def eval_data_config(cfg: DictConfig, stored: dict) -> DictConfig:
    """The checkpoint's data config, with the command line's `data.*` keys applied on top;
    `data=<name>` on the command line replaces it with the composed one."""
    overrides = HydraConfig.get().overrides.task
    if any(o.split("=", 1)[0].lstrip("+~") == "data" for o in overrides):
        return cfg.data
    check_stored_targets(stored["data"], "data", str(cfg.ckpt_path))  # before anything is built
    return with_data_overrides(
        stored["data"], [o for o in overrides if o.lstrip("+").startswith("data.")]
    )


def use_batch_norm(module: LEOModule, mode: str | None) -> None:
    """`batch_norm=running|batch`: test a LEO-strategy checkpoint with the other BatchNorm mode.
    For these strategies the mode only changes evaluation (meta-training normalises over the
    meta-batch either way), so one trained model can be scored both ways; maml's and meta_sgd's
    mode also shapes their inner loop, so it stays the one they were trained with."""
    if mode is None:
        return
    if mode not in LATENT_BATCH_NORM_MODES:
        raise ConfigError(
            [f"batch_norm={mode!r}: must be one of {', '.join(LATENT_BATCH_NORM_MODES)}"]
        )
    spec = module.strategy.spec
    if not _switchable(spec):
        switchable = [c.spec.name for c in built_in() if _switchable(c.spec)]
        raise ConfigError(
            [
                f"batch_norm={mode}: only the LEO strategies ({', '.join(switchable)}) change "
                f"BatchNorm mode at evaluation; this checkpoint's strategy is {spec.name} "
                f"({spec.fixed_batch_norm or 'it has no strategy.batch_norm setting'})"
            ]
        )
    module.strategy.batch_norm = mode


def _switchable(spec: StrategySpec) -> bool:
    """Whether a strategy's BatchNorm mode only changes evaluation (its spec says so)."""
    return spec.fixed_batch_norm is None and "batch_norm" in spec.settings


def evaluate(cfg: DictConfig) -> dict:
    checkpoint = read_checkpoint(cfg.ckpt_path)  # a clear error for a missing or foreign file
    data = eval_data_config(cfg, checkpoint[CHECKPOINT_KEY]["config"])
    check_example_shape(data, checkpoint["hyper_parameters"]["input_shape"])
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(data)
    module = LEOModule.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    use_batch_norm(module, cfg.batch_norm)
    trainer = build_trainer(cfg)
    metrics = test_metrics(trainer.test(module, datamodule=datamodule))
    print(format_accuracy(metrics))
    results = {"ckpt_path": str(cfg.ckpt_path), "strategy": type(module.strategy).__name__}
    results.update(metrics)
    results["batch_norm"] = module.strategy.batch_norm_mode(module.net)  # as train.py records it
    results["backbone_precision"] = precision.as_record(module.net.precision)
    results["version"] = __version__
    write_json(Path(HydraConfig.get().runtime.output_dir) / "results.json", results)
    return results
