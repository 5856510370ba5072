"""Classify your own images with a trained checkpoint (few-shot, any number of classes).

    python scripts/predict.py ckpt_path=... support_dir=DIR query_dir=DIR

support_dir holds one subfolder per class (the folder name is the label) with K >= 1 images;
every image in query_dir is classified. Prints a table and writes predictions.csv.
"""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.errors import reports_user_errors  # noqa: E402
from leo_lightning.cli.predict import predict  # noqa: E402
from leo_lightning.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="predict")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    from leo_lightning.cli.overrides import exit_on_unknown_keys  # a typo: name the real key

    exit_on_unknown_keys(ROOT / "conf", "predict")
    sys.exit(main())
