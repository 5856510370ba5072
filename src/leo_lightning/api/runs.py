"""The command-line runs, callable from plain Python: `leo_lightning.train` and `evaluate`.

A call does what `leo-train ...` does for a single run, in the calling process and without a
Hydra app: the same config (composed from the same files with Hydra's compose API), the same
checks before anything is written (validation.py: every bad value, run_dirs.py: the folder
rules, `ckpt_path=last`), the same run folder (`.hydra/`, the job's log, checkpoints,
results.json; Hydra's own `run_job` writes it) and the same job function as the command. It
returns the results dict. A user's mistake raises its own exception (ConfigError,
CheckpointError, DataError) instead of exiting, and leaves no empty run folder behind.

The process is left as it was found: the logging handlers the run installed are closed and the
caller's restored, so a notebook's later messages do not land in the run's log. Multiruns
(`-m`, sweepers, launchers) stay with the commands.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra.core.utils import run_job
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext
from omegaconf import DictConfig

from leo_lightning.config.compose import (
    ConfigDirs,
    compose_config,
    current_directory_as_root,
    quoted,
    search_path_override,
)
from leo_lightning.config.unknown_keys import unknown_key_message
from leo_lightning.config.validation import validate
from leo_lightning.errors import ConfigError
from leo_lightning.jobs import run_lock
from leo_lightning.jobs.console import quiet_third_party
from leo_lightning.jobs.run_dirs import prepare_run_dir
from leo_lightning.jobs.user_errors import remove_empty_run_dir, user_error
from leo_lightning.locations import CONFIG_DIR
from leo_lightning.training.allocator import configure_allocator


def train(overrides: Sequence[str] = (), config_dir: ConfigDirs = None) -> dict[str, Any]:
    """Meta-train (and test) as `leo-train <overrides>` does; returns what results.json holds
    (`run_dir`, `best_ckpt`, `best_val_acc`, `test/acc`, ...).

    `overrides` are command-line overrides (`["model.latent_dim=128", "experiment=..."]`);
    `config_dir`: folder(s) of your own configs, searched like `--config-dir`.
    """
    from leo_lightning.jobs.train import train as train_job

    return run("train", train_job, overrides, config_dir, resumes=True)


def evaluate(
    ckpt_path: str | Path, overrides: Sequence[str] = (), config_dir: ConfigDirs = None
) -> dict[str, Any]:
    """Test a checkpoint on the fixed test episodes as `leo-eval ckpt_path=...` does; returns
    what results.json holds (`test/acc`, `test/acc_ci95`, ...). `data.*` overrides apply on
    top of the checkpoint's data config, `data=<name>` replaces it."""
    from leo_lightning.jobs.eval import evaluate as evaluate_job

    overrides = [quoted("ckpt_path", ckpt_path), *overrides]
    return run("eval", evaluate_job, overrides, config_dir, resumes=False)


def run(
    config_name: str,
    job: Callable[[DictConfig], Any],
    overrides: Sequence[str],
    config_dir: ConfigDirs,
    resumes: bool,
) -> Any:
    """Compose `config_name` with `overrides`, check it and its run folder, then run `job` in
    that folder as Hydra's command would. `resumes`: a checkpoint given as ckpt_path continues
    its own run in place (train), rather than counting as a file of another run (eval)."""
    configure_allocator()  # as the commands do, once per process
    quiet_third_party()
    with current_directory_as_root():
        config = _composed(config_name, list(overrides), config_dir)
        validate(config)  # as hydra/default.yaml's callbacks do for a command's single run
        prepare_run_dir(config, resuming_jobs=(config_name,) if resumes else ())
        context = HydraContext(config_loader=None, callbacks=Callbacks(config))
        with _logging_restored(), _lock_released(Path(config.hydra.run.dir)):
            returned = run_job(
                task_function=_cleaning_up_after_user_errors(job),
                config=config,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                hydra_context=context,
            )
            return returned.return_value  # the job's exception, if it raised one


def _composed(config_name: str, overrides: list[str], config_dir: ConfigDirs) -> DictConfig:
    """The config, or for a key that does not exist the ConfigError the commands print: the
    key and the closest real one (not Hydra's advice to add it with +)."""
    try:
        return compose_config(config_name, overrides, config_dir)
    except ConfigCompositionException as error:
        searched = [*overrides, *search_path_override(config_dir)]
        message = unknown_key_message(CONFIG_DIR, config_name, searched)
        if message is None:
            raise
        raise ConfigError([message]) from error


def _cleaning_up_after_user_errors(job: Callable[[DictConfig], Any]) -> Callable:
    """A user error removes the run folder if it holds nothing of value, as the commands do,
    and reaches the caller as itself (not wrapped in Hydra's InstantiationException)."""

    @functools.wraps(job)
    def task(cfg: DictConfig) -> Any:
        try:
            return job(cfg)
        except Exception as error:
            cause = user_error(error)
            if cause is None:
                raise
            remove_empty_run_dir(cfg)
            if cause is error:
                raise
            raise cause from cause.__cause__  # its own cause (an OSError, say), not the wrapper

    return task


@contextmanager
def _lock_released(run_dir: Path) -> Iterator[None]:
    """The run folder's lock (taken by prepare_run_dir) is given back when the call ends, so the
    next call may use the folder; a command's process gives it back at exit."""
    try:
        yield
    finally:
        run_lock.release(run_dir)


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Hydra's job logging replaces the root logger's handlers (console and the run's log
    file); afterwards close those and give the caller's back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
