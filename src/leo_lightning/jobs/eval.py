"""Test a trained checkpoint on the fixed test episodes of the data it was trained with."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from leo_lightning.errors import ConfigError
from leo_lightning.jobs.common import build_trainer, format_accuracy, test_metrics, write_json
from leo_lightning.jobs.stored_data import check_example_shape, stored_data_config
from leo_lightning.models import precision
from leo_lightning.strategies.base import LATENT_BATCH_NORM_MODES
from leo_lightning.strategies.catalog import built_in
from leo_lightning.strategies.spec import StrategySpec
from leo_lightning.training.checkpoints import CHECKPOINT_KEY, read_checkpoint
from leo_lightning.training.module import LEOModule
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


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
    data = stored_data_config(cfg, checkpoint[CHECKPOINT_KEY]["config"])
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
    results["inner_loop_precision"] = module.strategy.inner_loop_precision(
        module.net, module.device
    )
    results["version"] = __version__
    written = Path(HydraConfig.get().runtime.output_dir) / "results.json"
    write_json(written, results)
    print(f"results written to {written}")
    return results
