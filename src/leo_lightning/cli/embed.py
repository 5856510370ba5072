"""`leo-embed`, and scripts/embed.py in a checkout: the command around the embed job
(jobs/embed.py)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from leo_lightning.cli.overrides import exit_on_unknown_keys
from leo_lightning.cli.version_flag import exit_on_version_flag
from leo_lightning.config.compose import use_current_directory_as_root
from leo_lightning.config.schemas import register_configs
from leo_lightning.config.validation import validate
from leo_lightning.jobs.console import quiet_third_party
from leo_lightning.jobs.embed import embed
from leo_lightning.jobs.user_errors import reports_user_errors
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def main() -> None:
    """`leo-embed ckpt_path=<pretrain run>/checkpoints/last.ckpt`, and scripts/embed.py."""
    exit_on_version_flag()
    configure_allocator()
    quiet_third_party()
    use_current_directory_as_root()
    register_configs()
    exit_on_unknown_keys(CONFIG_DIR, "embed")
    _command()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="embed")
@reports_user_errors
def _command(cfg: DictConfig) -> None:
    validate(cfg)
    embed(cfg)
