"""Lightning callbacks of this project."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

from leo_lightning.run_dirs import resume_command

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(Callback):
    """Ctrl-C (or SIGTERM, which scripts/train.py turns into Ctrl-C) during fit, in a training step
    or in validation, saves a checkpoint and says how to resume. Lightning then exits with status
    1; logs and files already written stay as they are. Checkpoint files are written atomically
    by Lightning (temporary file, then rename), so an interrupted save never replaces a good
    checkpoint with half of one."""

    def __init__(self, dirpath: str, filename: str = "interrupted.ckpt"):
        self.path = Path(dirpath) / filename

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException):
        # During fit, validation included: a Ctrl-C there must save too. Weights, optimizer and
        # step are those of the last completed training step either way.
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            message = (
                f"interrupted at step {trainer.global_step}: checkpoint saved to {self.path}\n"
                f"resume with: {_resume_command(self.path)}"
            )
            log.warning(message)
            print(message, file=sys.stderr)


def _resume_command(checkpoint: Path) -> str:
    """This run's (in a multirun: this job's) command, resuming in its own folder; the plain
    command line where Hydra is not running (a Trainer used directly)."""
    if HydraConfig.initialized():
        return resume_command(checkpoint)
    command = " ".join(a for a in sys.argv if not a.startswith("ckpt_path="))
    return f"python {command} ckpt_path={checkpoint}"
