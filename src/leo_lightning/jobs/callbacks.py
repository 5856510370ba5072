"""Lightning callbacks of this project."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback, Checkpoint
from lightning.pytorch.trainer.states import TrainerFn

from leo_lightning.errors import CheckpointError
from leo_lightning.jobs.run_dirs import resume_command

log = logging.getLogger(__name__)


class CheckpointOnInterrupt(Callback):
    """Ctrl-C (or SIGTERM, which scripts/train.py turns into Ctrl-C) during fit, in a training step
    or in validation, saves a checkpoint and says how to resume. Lightning then exits with status
    1; logs and files already written stay as they are. Checkpoint files are written atomically
    (temporary file, then rename), so an interrupted save never replaces a good checkpoint with
    half of one; a save that fails raises, and is never reported as saved."""

    def __init__(self, dirpath: str, filename: str = "interrupted.ckpt"):
        self.dirpath = Path(dirpath)
        self.path = self.dirpath / filename

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException):
        # During fit, validation included: a Ctrl-C there must save too. Weights, optimizer and
        # step are those of the last completed training step either way.
        if not isinstance(exception, KeyboardInterrupt) or trainer.state.fn != TrainerFn.FITTING:
            return
        self._save(trainer)
        if trainer.is_global_zero:
            message = (
                f"interrupted at step {trainer.global_step}: checkpoint saved to {self.path}\n"
                f"resume with: {_resume_command(self.path)}"
            )
            log.warning(message)
            print(message, file=sys.stderr)

    def _save(self, trainer: L.Trainer) -> None:
        """Save, and make sure a new file is there: a save that failed, or left only an older
        interrupted.ckpt behind, must never be reported as saved."""
        before = _identity(self.path)
        try:
            trainer.save_checkpoint(self.path, weights_only=False)  # a full, resumable state
        except Exception as error:
            raise CheckpointError(
                f"interrupted at step {trainer.global_step}, but the checkpoint could not be "
                f"saved to {self.path}: {error}"
            ) from error
        if trainer.is_global_zero and _identity(self.path) in (None, before):
            raise CheckpointError(
                f"interrupted at step {trainer.global_step}, but no checkpoint was written to "
                f"{self.path}"
            )


def _resume_command(checkpoint: Path) -> str:
    """This run's (in a multirun: this job's) command, resuming in its own folder; the plain
    command line where Hydra is not running (a Trainer used directly)."""
    if HydraConfig.initialized():
        return resume_command(checkpoint)
    command = " ".join(a for a in sys.argv if not a.startswith("ckpt_path="))
    return f"python {command} ckpt_path={checkpoint}"


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, modification time) of the file, None if there is none: an atomic save always
    puts a new file in place, so a save that worked changes it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


class LastCheckpoint(Checkpoint):
    """Keeps `<dirpath>/last.ckpt` current, so that a kill at any moment (SIGKILL, a node lost,
    a job out of time) loses at most `every_n_steps` steps or `every_seconds` seconds of
    training, whichever comes first, and the run resumes from it.

    Why not ModelCheckpoint: with manual optimization (LEO's) Lightning 2.6 ignores
    train_time_interval; a step interval on the instance that monitors val/acc defers every save
    to the next validation; and that instance writes last.ckpt at a validation only when val/acc
    improves. A second ModelCheckpoint writing last.ckpt would fight the first over the file
    (last-v1.ckpt). So last.ckpt has one writer, this callback: at the step or time interval,
    after every validation (the boundary a resume continues from most exactly) and at the end of
    training; and after the first step of a run, so that a run killed before its first interval
    leaves one too. Each save is atomic (temporary file, then rename) and costs one torch.save.

    It is a Lightning `Checkpoint`, so Lightning runs it after the other callbacks and after the
    ModelCheckpoint listed before it: the last.ckpt written after a validation then carries that
    validation's best checkpoint, not the one before (a resumed run used to test an older best
    and leave the newer file behind)."""

    def __init__(
        self,
        dirpath: str,
        every_n_steps: int | None = 100,
        every_seconds: float | None = 120.0,
        filename: str = "last.ckpt",
    ):
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: must be >= 1 or null")
        if every_seconds is not None and every_seconds < 0:
            raise ValueError(f"every_seconds={every_seconds}: must be >= 0 or null")
        self.dirpath = Path(dirpath)
        self.path = self.dirpath / filename
        self.every_n_steps = every_n_steps
        self.every_seconds = every_seconds
        self._saved_step = 0  # the global step of the last save
        self._saved_at = 0.0  # time.monotonic() of the last save
        self._saved_in_this_fit = False

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._saved_step, self._saved_at = trainer.global_step, time.monotonic()
        self._saved_in_this_fit = False

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        if self._due(trainer):
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            self._save(trainer)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.global_step != self._saved_step:
            self._save(trainer)

    def _due(self, trainer: L.Trainer) -> bool:
        """A skipped update leaves the state as saved: nothing new to save. The time is each
        rank's own, so the ranks agree on it (a save is collective) before anyone saves."""
        steps = trainer.global_step - self._saved_step
        if steps <= 0:
            return False
        if not self._saved_in_this_fit:  # the first step of the run
            return True
        if self.every_n_steps is not None and steps >= self.every_n_steps:
            return True
        if self.every_seconds is None:
            return False
        late = time.monotonic() - self._saved_at >= self.every_seconds
        return trainer.strategy.reduce_boolean_decision(late, all=False)

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # a full, resumable state
        self._saved_step, self._saved_at = trainer.global_step, time.monotonic()
        self._saved_in_this_fit = True


class LearningRateMonitor(Callback):
    """The outer learning rate under `train/lr`, beside the other training curves (one curve per
    named parameter group, `train/lr/backbone` and `train/lr/meta` with model.backbone_lr_scale),
    read from the optimizer before each step, every trainer.log_every_n_steps steps. It works
    under manual optimization and without a logger (then it does nothing). Lightning's own
    monitor named the curve after the optimizer's class (`lr-Adam`), apart from the rest."""

    def __init__(self, logging_interval: str = "step"):
        if logging_interval != "step":
            raise ValueError(f"logging_interval={logging_interval!r}: only 'step' is supported")

    def on_train_batch_start(self, trainer: L.Trainer, *args, **kwargs) -> None:
        step = trainer.global_step
        if not trainer.loggers or step % max(trainer.log_every_n_steps, 1):
            return
        rates = {}
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                name = f"train/lr/{group['name']}" if "name" in group else "train/lr"
                rates[name] = float(group["lr"])
        for logger in trainer.loggers:
            logger.log_metrics(rates, step=step)
