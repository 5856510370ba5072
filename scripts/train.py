"""Meta-train LEO: `python scripts/train.py [group=option ...] [key=value ...]`."""

import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.train import train  # noqa: E402
from leo_lightning.config import register_configs  # noqa: E402
from leo_lightning.validation import validate  # noqa: E402

register_configs()


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="train")
def main(cfg: DictConfig) -> float | None:
    # A single run was checked before its run dir existed (hydra/default.yaml callbacks); a
    # multirun job is checked here, where a ConfigError fails this job and the sweep goes on.
    validate(cfg)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # SIGTERM saves a checkpoint too
    # A process started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no Ctrl-C handler: restore it, so SIGINT always interrupts.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = train(cfg)
    return results.get(cfg.optimized_metric)


if __name__ == "__main__":
    from leo_lightning.cli.overrides import exit_on_unknown_keys  # a typo: name the real key

    exit_on_unknown_keys(ROOT / "conf", "train")
    sys.exit(main())
