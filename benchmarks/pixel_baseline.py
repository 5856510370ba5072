"""Nearest neighbour in pixel space on the fixed test episodes of any data config.

    python benchmarks/pixel_baseline.py [data=glyphs] [data.k_shot=5 ...]

Prints JSON: test accuracy ± 95% CI over the same episodes that scripts/train.py tests on.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from common import machine
from hydra.utils import instantiate

from leo_lightning.config.compose import compose_config
from leo_lightning.jobs.baselines import pixel_nearest_neighbour
from leo_lightning.training.metrics import EpisodeAccuracy

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))


def main(overrides: list[str]) -> dict:
    cfg = compose_config("train", overrides, hydra=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("test")
    metric = EpisodeAccuracy()
    for episode in datamodule.test_dataloader():
        metric.update((pixel_nearest_neighbour(episode) == episode.query_y).float().mean(-1))
    mean, ci95, episodes = metric.compute()
    return {
        "machine": machine(),
        "backbone_precision": None,  # no network: raw pixels
        "method": "pixel nearest neighbour",
        "data": cfg.data.source._target_.rsplit(".", 1)[-1],
        "n_way": cfg.data.n_way,
        "k_shot": cfg.data.k_shot,
        "split": "test",
        "test/acc": round(float(mean), 4),
        "test/acc_ci95": round(float(ci95), 4),
        "test/episodes": int(episodes),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=2))
