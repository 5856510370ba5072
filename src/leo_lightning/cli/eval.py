"""`leo-eval`, and scripts/eval.py in a checkout: the command around the eval job
(jobs/eval.py)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from leo_lightning.cli.version_flag import exit_on_version_flag
from leo_lightning.config.compose import use_current_directory_as_root
from leo_lightning.config.schemas import register_configs
from leo_lightning.jobs.console import quiet_third_party
from leo_lightning.jobs.eval import evaluate
from leo_lightning.jobs.user_errors import reports_user_errors
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def main() -> None:
    """`leo-eval ckpt_path=<run>/checkpoints/last.ckpt`, and scripts/eval.py in a checkout."""
    exit_on_version_flag()  # --version: this package's, not Hydra's
    configure_allocator()  # before the first step: every step gets the same allocator
    quiet_third_party()  # no third-party line that looks like a failure (jobs/console.py)
    use_current_directory_as_root()
    register_configs()
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def _command(cfg: DictConfig) -> None:
    evaluate(cfg)
