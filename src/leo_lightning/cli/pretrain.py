"""`leo-pretrain`, and scripts/pretrain.py in a checkout: the command around the pretrain job
(jobs/pretrain.py). It checks the command line's keys, then Hydra composes the config and runs
the job in its run folder."""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from leo_lightning.cli.interrupts import interrupt_on_signals
from leo_lightning.cli.overrides import exit_on_unknown_keys
from leo_lightning.cli.version_flag import exit_on_version_flag
from leo_lightning.config.compose import use_current_directory_as_root
from leo_lightning.config.schemas import register_configs
from leo_lightning.config.validation import validate
from leo_lightning.jobs.console import quiet_third_party
from leo_lightning.jobs.pretrain import pretrain
from leo_lightning.jobs.run_dirs import prepare_job_dir
from leo_lightning.jobs.user_errors import reports_user_errors
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def main() -> None:
    """`leo-pretrain [group=option ...] [key=value ...]`, and scripts/pretrain.py."""
    exit_on_version_flag()
    configure_allocator()
    quiet_third_party()
    use_current_directory_as_root()
    register_configs()
    exit_on_unknown_keys(CONFIG_DIR, "pretrain")
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="pretrain")
@reports_user_errors
def _command(cfg: DictConfig) -> float | None:
    validate(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        prepare_job_dir(cfg)
    interrupt_on_signals()
    results = pretrain(cfg)
    return results.get(cfg.optimized_metric)
