"""`leo-train`, and scripts/train.py in a checkout: the command around the train job
(jobs/train.py). It checks the command line's keys, then Hydra composes the config and runs
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
from leo_lightning.jobs.run_dirs import prepare_job_dir
from leo_lightning.jobs.train import train
from leo_lightning.jobs.user_errors import reports_user_errors
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def main() -> None:
    """`leo-train [group=option ...] [key=value ...]`, and scripts/train.py in a checkout."""
    exit_on_version_flag()  # --version: this package's, not Hydra's
    configure_allocator()  # before the first step: every step gets the same allocator
    quiet_third_party()  # no third-party line that looks like a failure (jobs/console.py)
    use_current_directory_as_root()
    register_configs()
    exit_on_unknown_keys(CONFIG_DIR, "train")  # a typo: name the real key, not Hydra's +key hint
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def _command(cfg: DictConfig) -> float | None:
    # A single run and its folder were checked before its run dir existed (hydra/default.yaml
    # callbacks); a multirun job is checked here, where a ConfigError fails this job and the
    # sweep goes on.
    validate(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        prepare_job_dir(cfg)  # also turns ckpt_path=last into this job's own last.ckpt
    interrupt_on_signals()  # SIGTERM and Ctrl-C save interrupted.ckpt
    results = train(cfg)
    return results.get(cfg.optimized_metric)
