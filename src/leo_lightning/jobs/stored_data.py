"""The data a job reads a checkpoint with: by default the data config stored in the checkpoint
(what it was trained on), with the command line's `data.*` keys on top (leo-eval, leo-embed)."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from leo_lightning.config.compose import with_data_overrides
from leo_lightning.errors import ConfigError
from leo_lightning.training.trusted_targets import check_stored_targets


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


def stored_data_config(cfg: DictConfig, stored: dict) -> DictConfig:
    """The checkpoint's data config, with the command line's `data.*` keys applied on top;
    `data=<name>` on the command line replaces it with the composed one."""
    overrides = HydraConfig.get().overrides.task
    if any(o.split("=", 1)[0].lstrip("+~") == "data" for o in overrides):
        return cfg.data
    check_stored_targets(stored["data"], "data", str(cfg.ckpt_path))  # before anything is built
    return with_data_overrides(
        stored["data"], [o for o in overrides if o.lstrip("+").startswith("data.")]
    )
