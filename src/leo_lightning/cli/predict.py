"""`leo-predict`, and scripts/predict.py in a checkout: the command around the predict job
(jobs/predict.py)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from leo_lightning.cli.overrides import exit_on_unknown_keys
from leo_lightning.cli.version_flag import exit_on_version_flag
from leo_lightning.config.compose import use_current_directory_as_root
from leo_lightning.config.schemas import register_configs
from leo_lightning.jobs.console import quiet_third_party
from leo_lightning.jobs.predict import predict
from leo_lightning.jobs.user_errors import reports_user_errors
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def main() -> None:
    """`leo-predict ckpt_path=... support_dir=DIR query_dir=DIR`, and scripts/predict.py in a
    checkout."""
    exit_on_version_flag()  # --version: this package's, not Hydra's
    configure_allocator()  # before the first step: every step gets the same allocator
    quiet_third_party()  # no third-party line that looks like a failure (jobs/console.py)
    use_current_directory_as_root()
    register_configs()
    exit_on_unknown_keys(CONFIG_DIR, "predict")  # a typo: name the real key, not Hydra's +key hint
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="predict")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def _command(cfg: DictConfig) -> None:
    predict(cfg)
