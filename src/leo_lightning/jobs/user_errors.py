"""Errors a user causes (a bad value, a missing or foreign checkpoint, a missing or unusable
dataset) end a script with their message alone and leave no empty run folder behind.

Which errors those are: `USER_ERRORS` below. Anything else is a bug and keeps Hydra's traceback;
`HYDRA_FULL_ERROR=1` shows the full traceback of a user error too.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from leo_lightning.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from leo_lightning.jobs.run_dirs import holds_nothing_of_value

# config values (validation.py), checkpoints (checkpoints.py), datasets and input folders (data/)
USER_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CheckpointError,
    DataError,
    TrainingDiverged,  # the settings made it diverge: the message says what to change
)
USER_ERROR_EXIT_CODE = 2  # as for the config checks before the run starts


class JobFailed(CompactHydraException):
    """A multirun job's user error: Hydra prints its message without a traceback when the sweep
    reports it, and the sweep's other jobs still run."""


def user_error(error: BaseException | None) -> Exception | None:
    """The user error behind `error`: itself, or a cause it wraps (hydra.utils.instantiate
    wraps what a constructor raises in an InstantiationException)."""
    while error is not None:
        if isinstance(error, USER_ERRORS):
            return error
        error = error.__cause__
    return None


def reports_user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wraps a script's task function (under @hydra.main): a user error removes the run folder
    if it holds nothing of value, then prints its message and exits with code 2 (single run),
    or fails only this job with that message (multirun)."""

    @functools.wraps(task)
    def run(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as error:
            cause = user_error(error)
            if cause is None:
                raise
            remove_empty_run_dir(cfg)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise JobFailed(str(cause)) from error
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)

    return run


def remove_empty_run_dir(cfg: DictConfig) -> bool:
    """Delete this run's folder if it holds only what Hydra wrote before the job (.hydra/ and
    the log), and the parents that leaves empty, up to paths.output_dir. A folder with a
    checkpoint, a result or anything else stays as it is (a resumed run's, for one)."""
    hydra = HydraConfig.get()
    run_dir = Path(hydra.runtime.output_dir)
    if not run_dir.is_dir() or not holds_nothing_of_value(run_dir, f"{hydra.job.name}.log"):
        return False
    _close_log_files_in(run_dir)
    shutil.rmtree(run_dir)
    output_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if output_dir is not None:
        _remove_empty_parents(run_dir.parent, Path(output_dir).resolve())
    return True


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    """outputs/runs/<date>/ of the day's only run, say; never `stop` itself or above it."""
    folder = folder.resolve()
    while folder != stop and folder.is_relative_to(stop) and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _close_log_files_in(folder: Path) -> None:
    """Hydra's job log writes into the run folder: detach and close that handler first, so
    nothing re-creates the file after the folder is gone."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        filename = getattr(handler, "baseFilename", None)
        if filename and Path(filename).resolve().is_relative_to(folder.resolve()):
            root.removeHandler(handler)
            handler.close()
