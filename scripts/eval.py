"""Test a checkpoint: `python scripts/eval.py ckpt_path=<run>/checkpoints/last.ckpt`."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.errors import reports_user_errors  # noqa: E402
from leo_lightning.cli.eval import evaluate  # noqa: E402
from leo_lightning.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="eval")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    sys.exit(main())
