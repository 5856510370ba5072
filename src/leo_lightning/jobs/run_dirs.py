"""One run per folder: a run never writes into another run's folder, and a failed start leaves
nothing behind.

The rules, checked before Hydra writes anything (a Hydra callback, `RunDirGuard`):

- A run writes into a new or empty folder. A non-empty `hydra.run.dir` is refused (exit 2) unless
  the run resumes from a checkpoint inside it (train.py, `ckpt_path=<run>/checkpoints/...` or
  `ckpt_path=last`: it continues that run in place), or `overwrite=true`: then the old run's
  folder is deleted first, so no old checkpoint, result or event file survives next to the new
  config. overwrite only deletes a folder that holds a `.hydra/` (one written by these scripts);
  any other non-empty folder is refused even then.
- A multirun's sweep folder follows the same rule, checked before the sweep starts. The
  exception is the Optuna sweeper: a rerun continues the study in the same folder by design, and
  its trials get new numbers, so new job folders. Each job's folder is checked again in the job
  (`prepare_job_dir`), where `ckpt_path=last` means that job's own last.ckpt (a requeued SLURM
  job resumes this way).
- `ckpt_path=last`: with `hydra.run.dir=<run>` given, `<run>/checkpoints/last.ckpt`; without it,
  the most recently written `<paths.output_dir>/runs/*/*/checkpoints/last.ckpt` of a run started
  with the same overrides (none: refused, listing the runs), and the run continues in that
  folder; never while another process holds that folder's lock (run_lock.py). It is resolved
  before the folder is written, so `.hydra/config.yaml`
  records the checkpoint that was used.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from leo_lightning.config.run_label import job_overrides, without_starting_keys
from leo_lightning.errors import CheckpointError, ConfigError
from leo_lightning.jobs import run_lock

log = logging.getLogger(__name__)

HYDRA_RECORD = ".hydra"  # what Hydra writes into every run folder before the job starts
LAST = "last"  # ckpt_path=last
CONTINUED_SWEEPERS = ("hydra_plugins.leo_optuna_sweeper.",)  # reuse their sweep folder on purpose


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def is_inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def holds_nothing_of_value(folder: Path, log_name: str) -> bool:
    """True when the folder holds only what a run writes before doing any work: Hydra's record
    (.hydra/), the run's log and empty folders. A checkpoint, a result, an event file or
    anything a user put there makes it False."""
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_dir() or relative.parts[0] == HYDRA_RECORD or relative == Path(log_name):
            continue
        if relative == Path(run_lock.LOCK_NAME):
            continue
        return False
    return True


def _listing(folder: Path, limit: int = 5) -> str:
    names = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in folder.iterdir()
        if p.name != run_lock.LOCK_NAME
    )
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


# -- ckpt_path=last ----------------------------------------------------------------------------


def same_job_last_checkpoint(output_dir: Path, overrides: list[str]) -> Path:
    """ckpt_path=last without a run folder: the newest last.ckpt under output_dir/runs/*/*/ of
    a run started with the same overrides as this command (ckpt_path and overwrite aside), so
    that `last` never continues another experiment in its folder. None matching: refused,
    listing the runs there are."""
    pattern = "runs/*/*/checkpoints/last.ckpt"
    found = sorted(
        (p for p in output_dir.glob(pattern) if p.is_file()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    if not found:
        raise CheckpointError(
            f"ckpt_path=last: no run to resume, no {output_dir / pattern} exists; give the run "
            "folder with hydra.run.dir=<run>, or a checkpoint file as ckpt_path"
        )
    wanted = job_overrides(overrides)
    for checkpoint in found:
        if job_overrides(stored_overrides(checkpoint.parents[1])) == wanted:
            return checkpoint
    listed = "\n".join(f"  {p.parents[1]}  ({_describe(p.parents[1])})" for p in found[:5])
    raise CheckpointError(
        f"ckpt_path=last: no run under {output_dir / 'runs'} was started with this command's "
        f"overrides ({' '.join(wanted) or 'none'}), so none is this run to resume; resume one "
        f"by its folder, hydra.run.dir=<run> ckpt_path=last. The newest runs with a last.ckpt:"
        f"\n{listed}"
    )


def _describe(run_dir: Path) -> str:
    return " ".join(job_overrides(stored_overrides(run_dir))) or "no overrides"


def stored_overrides(run_dir: Path) -> list[str] | None:
    """The overrides a run was started with (.hydra/overrides.yaml), None if not recorded."""
    try:
        stored = yaml.safe_load((run_dir / HYDRA_RECORD / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in stored] if isinstance(stored, list) else None


def own_last_checkpoint(run_dir: Path) -> Path:
    """ckpt_path=last for a run whose folder is known: its own last.ckpt, which must exist."""
    path = last_checkpoint(run_dir)
    if not path.is_file():
        raise CheckpointError(
            f"ckpt_path=last: {path} does not exist, so the run in {run_dir} has nothing to "
            "resume from"
        )
    return path


def _run_dir_given(config: DictConfig) -> bool:
    overrides = OmegaConf.select(config, "hydra.overrides.hydra", default=None) or []
    return any(o.split("=", 1)[0].lstrip("+") == "hydra.run.dir" for o in overrides)


def resolve_last(config: DictConfig) -> None:
    """Replace ckpt_path=last in a single run's config by the checkpoint it means, and point
    hydra.run.dir at that checkpoint's run when none was given, so the run continues there."""
    if config.get("ckpt_path") != LAST:
        return
    if _run_dir_given(config):
        checkpoint = own_last_checkpoint(Path(config.hydra.run.dir))
    else:
        overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
        checkpoint = same_job_last_checkpoint(Path(config.paths.output_dir), overrides)
    with read_write(config), open_dict(config):
        config.ckpt_path = str(checkpoint.resolve())
        config.hydra.run.dir = str(checkpoint.parents[1].resolve())
    log.info("ckpt_path=last: resuming %s", config.ckpt_path)


# -- the folder checks -------------------------------------------------------------------------


def has_checkpoint(folder: Path) -> bool:
    """Whether `ckpt_path=last` (or a checkpoint inside the folder) could resume it: advice to
    resume is only given where it works."""
    return any((folder / "checkpoints").glob("*.ckpt"))


def refused(key: str, folder: Path, what: str, can_resume: bool = True) -> ConfigError:
    resume = "resume it with ckpt_path=last (or a checkpoint inside it), " if can_resume else ""
    return ConfigError(
        [
            f"{key}={folder} already holds {what} ({_listing(folder)}): a new run would mix its "
            f"files with the old ones; {resume}choose another folder, or add overwrite=true to "
            "delete it first"
        ]
    )


def remove_old_run(key: str, folder: Path, marker: str) -> None:
    """overwrite=true: delete the previous run's folder, which must look like one (`marker`)."""
    if not (folder / marker).exists():
        raise ConfigError(
            [
                f"{key}={folder} is not empty and has no {marker}, so it is not a folder these "
                "scripts wrote: overwrite=true deletes only such folders; choose another folder"
            ]
        )
    log.warning("overwrite=true: deleting the previous run in %s", folder)
    shutil.rmtree(folder)


# What a job reads: overwrite=true must never delete it (an eval into the training run's own
# folder would otherwise delete the checkpoint it is about to score).
INPUT_KEYS = ("ckpt_path", "support_dir", "query_dir")


def refuse_deleting_inputs(config: DictConfig, folder: Path, advice: str | None = None) -> None:
    """Refuse overwrite=true when `folder` holds a file or folder the job reads."""
    inside = [
        f"{key}={value}"
        for key in INPUT_KEYS
        if (value := config.get(key)) and value != LAST and is_inside(value, folder)
    ]
    if inside:
        advice = advice or "write the results to another folder (hydra.run.dir)"
        raise ConfigError(
            [f"overwrite=true would delete {', '.join(inside)}, inside {folder}: {advice}"]
        )


def prepare_run_dir(config: DictConfig, resuming_jobs: tuple[str, ...]) -> None:
    """A single run's folder, before Hydra creates it: see the module docstring."""
    resumes = config.hydra.job.name in resuming_jobs
    if resumes:
        resolve_last(config)
    run_dir = Path(config.hydra.run.dir)
    holder = run_lock.live_holder(run_dir)  # removes a stale lock
    if holder is not None and holder != os.getpid():
        raise run_lock.in_use("hydra.run.dir", run_dir, holder)
    _check_folder(config, run_dir, resumes)
    run_lock.acquire(run_dir)  # atomic: of two runs started at once, one gets the folder


def _check_folder(config: DictConfig, run_dir: Path, resumes: bool) -> None:
    if is_empty(run_dir):
        return
    ckpt_path = config.get("ckpt_path") if resumes else None
    in_place = bool(ckpt_path) and is_inside(ckpt_path, run_dir)
    if config.get("overwrite"):
        refuse_deleting_inputs(config, run_dir, "resume or overwrite" if resumes else None)
        remove_old_run("hydra.run.dir", run_dir, HYDRA_RECORD)
    elif not in_place:
        raise refused(
            "hydra.run.dir", run_dir, "files of another run", resumes and has_checkpoint(run_dir)
        )


def prepare_sweep_dir(config: DictConfig) -> None:
    """A multirun's folder, before the sweep writes into it."""
    sweep_dir = Path(config.hydra.sweep.dir)
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_", default="") or ""
    if is_empty(sweep_dir) or sweeper.startswith(CONTINUED_SWEEPERS):
        return
    if config.get("overwrite"):
        refuse_deleting_inputs(config, sweep_dir)
        remove_old_run("hydra.sweep.dir", sweep_dir, "multirun.yaml")
    else:
        raise refused("hydra.sweep.dir", sweep_dir, "files of another multirun", False)


def prepare_job_dir(cfg: DictConfig) -> None:
    """A multirun job's folder, checked in the job (Hydra has written .hydra/ and the log by
    then): ckpt_path=last is this job's last.ckpt; a folder holding another run's files is
    refused, unless the job resumes from it or overwrite=true (which clears all but .hydra/
    and the log)."""
    hydra = HydraConfig.get()
    job_dir = Path(hydra.runtime.output_dir)
    log_name = f"{hydra.job.name}.log"
    if not _secondary_rank():  # a DDP job's further ranks share rank 0's folder and lock
        run_lock.acquire(job_dir, key="the job folder")
    if cfg.get("ckpt_path") == LAST:
        cfg.ckpt_path = str(own_last_checkpoint(job_dir).resolve())
    if cfg.get("ckpt_path") and is_inside(cfg.ckpt_path, job_dir):
        return
    if holds_nothing_of_value(job_dir, log_name):
        return
    if not cfg.get("overwrite"):
        raise refused("the job folder", job_dir, "files of another run", has_checkpoint(job_dir))
    refuse_deleting_inputs(cfg, job_dir)
    log.warning("overwrite=true: deleting the previous files in %s", job_dir)
    for path in job_dir.iterdir():
        if path.name not in (HYDRA_RECORD, log_name):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class RunDirGuard(Callback):
    """Checks the run or sweep folder before Hydra writes into it (hydra/default.yaml).
    `resuming_jobs`: the scripts (Hydra job names) whose ckpt_path resumes a run; for the
    others (eval, predict) a checkpoint inside the folder is no reason to write into it."""

    def __init__(self, resuming_jobs: list[str] | tuple[str, ...] = ("train",)):
        self.resuming_jobs = tuple(resuming_jobs)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if _secondary_rank():  # the run's own other ranks join the folder rank 0 prepared
            return
        _exit_on_error(prepare_run_dir, config, self.resuming_jobs)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        run_lock.release(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _exit_on_error(prepare_sweep_dir, config)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        run_lock.release(Path(config.hydra.runtime.output_dir))  # a multirun job's folder


def _secondary_rank() -> bool:
    """A process that Lightning's DDP launcher (LOCAL_RANK), torchrun (RANK) or SLURM
    (SLURM_PROCID) started as a further rank of a run: it reruns the same command into the same
    folder, which rank 0 has already checked and filled."""
    return any(
        int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID")
    )


def _exit_on_error(check, *args) -> None:
    try:
        check(*args)
    except (ConfigError, CheckpointError) as error:
        print(error, file=sys.stderr)
        sys.exit(2)


# -- the command that resumes this run ---------------------------------------------------------


def resume_command(checkpoint: str | Path) -> str:
    """The command that resumes this run from `checkpoint` in its own folder: the script, this
    run's own overrides (in a multirun: this job's, without -m and the other jobs' values), the
    checkpoint and hydra.run.dir. Shell-quoted, so it can be pasted as it is."""
    hydra = HydraConfig.get()
    overrides = without_starting_keys(list(hydra.overrides.task))
    run_dir = hydra.runtime.output_dir
    resume = [f"ckpt_path={checkpoint}", f"hydra.run.dir={run_dir}"]
    args = [*_command(hydra.job.name), *overrides, *resume]
    return " ".join(shlex.quote(str(a)) for a in args)


def _command(job_name: str) -> list[str]:
    """The command as it was called: `python scripts/<job>.py` or the installed `leo-<job>`.
    Under a launcher (SLURM) or from Python (leo_lightning.train) argv is another program's,
    so the checkout's scripts/<job>.py where there is one, else `leo-<job>`."""
    called = Path(sys.argv[0]).name
    if called == f"{job_name}.py":
        return ["python", sys.argv[0]]
    if called == f"leo-{job_name}":
        return [called]
    script = Path(os.environ.get("LEO_PROJECT_ROOT", ".")) / "scripts" / f"{job_name}.py"
    return ["python", str(script)] if script.is_file() else [f"leo-{job_name}"]
