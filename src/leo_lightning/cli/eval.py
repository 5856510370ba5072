"""Test a trained checkpoint on the fixed test episodes of the data it was trained with."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from leo_lightning import precision
from leo_lightning.checkpoints import CHECKPOINT_KEY, read_checkpoint
from leo_lightning.cli.common import build_trainer, format_accuracy, test_metrics, write_json
from leo_lightning.cli.errors import reports_user_errors
from leo_lightning.config import register_configs
from leo_lightning.configs import CONFIG_DIR, use_current_directory_as_root, with_data_overrides
from leo_lightning.module import LEOModule
from leo_lightning.strategies.base import LATENT_BATCH_NORM_MODES, LatentStrategy
from leo_lightning.trusted_targets import check_stored_targets
from leo_lightning.validation import LATENT, ConfigError

# Why the other strategies keep the mode of their training.
_TRAINED = "its strategy.batch_norm, set at training, also shapes its inner loop"
BATCH_NORM_AT_TRAINING = {
    "MAML": _TRAINED,
    "MetaSGD": _TRAINED,
    "ProtoNet": "class means of features normalised with running statistics",
    "PerTask": "each task's fresh network normalises with its support set",
}

log = logging.getLogger(__name__)


def read_checkpoint_config(ckpt_path: str) -> dict:
    """The run config stored in a leo-lightning checkpoint, with a clear error otherwise."""
    return read_checkpoint(ckpt_path)[CHECKPOINT_KEY]["config"]


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
    if not isinstance(module.strategy, LatentStrategy):
        name = type(module.strategy).__name__
        raise ConfigError(
            [
                f"batch_norm={mode}: only the LEO strategies ({', '.join(LATENT.values())}) "
                f"change BatchNorm mode at evaluation; this checkpoint's strategy is {name} "
                f"({BATCH_NORM_AT_TRAINING.get(name, 'its mode is fixed')})"
            ]
        )
    module.strategy.batch_norm = mode


def evaluate(cfg: DictConfig) -> dict:
    stored = read_checkpoint_config(cfg.ckpt_path)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(eval_data_config(cfg, stored))
    module = LEOModule.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    use_batch_norm(module, cfg.batch_norm)
    trainer = build_trainer(cfg)
    metrics = test_metrics(trainer.test(module, datamodule=datamodule))
    print(format_accuracy(metrics))
    results = {"ckpt_path": str(cfg.ckpt_path), "strategy": type(module.strategy).__name__}
    results.update(metrics)
    results["batch_norm"] = module.strategy.batch_norm_mode(module.net)  # as train.py records it
    results["backbone_precision"] = precision.as_record(module.net.precision)
    write_json(Path(HydraConfig.get().runtime.output_dir) / "results.json", results)
    return results


# -- the command ----------------------------------------------------------------------------------


def main() -> None:
    """`leo-eval ckpt_path=<run>/checkpoints/last.ckpt`, and scripts/eval.py in a checkout."""
    use_current_directory_as_root()
    register_configs()
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def _command(cfg: DictConfig) -> None:
    evaluate(cfg)
