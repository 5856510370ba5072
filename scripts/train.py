"""Meta-train LEO: `python scripts/train.py [group=option ...] [key=value ...]`."""

import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.errors import reports_user_errors  # noqa: E402
from leo_lightning.cli.train import train  # noqa: E402
from leo_lightning.config import register_configs  # noqa: E402
from leo_lightning.run_dirs import prepare_job_dir  # noqa: E402
from leo_lightning.validation import validate  # noqa: E402

register_configs()


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="train")
@reports_user_errors  # a user's mistake: its message, no traceback, no empty run folder
def main(cfg: DictConfig) -> float | None:
    # A single run and its folder were checked before its run dir existed (hydra/default.yaml
    # callbacks); a multirun job is checked here, where a ConfigError fails this job and the
    # sweep goes on.
    validate(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        prepare_job_dir(cfg)  # also turns ckpt_path=last into this job's own last.ckpt
    # SIGTERM saves a checkpoint too; but not in a submitit (SLURM) job, where SIGTERM is part
    # of requeueing and submitit's own handler ignores it (hydra/launcher/slurm.yaml).
    if "SUBMITIT_FOLDER" not in os.environ:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    # A process started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no Ctrl-C handler: restore it, so SIGINT always interrupts.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results = train(cfg)
    return results.get(cfg.optimized_metric)


if __name__ == "__main__":
    from leo_lightning.cli.overrides import exit_on_unknown_keys  # a typo: name the real key

    exit_on_unknown_keys(ROOT / "conf", "train")
    sys.exit(main())
