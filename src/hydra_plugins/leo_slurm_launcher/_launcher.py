"""A SLURM launcher whose jobs requeue themselves and resume where they stopped.

How a requeue works (submitit): SLURM sends USR2 `signal_delay_s` before the time limit (and on
preemption); submitit's handler asks the job's callable for `checkpoint()`, pickles the
DelayedSubmission it returns, runs `scontrol requeue` and exits. The requeued job runs that
submission: the launcher's `__call__` with the arguments given here. Hydra's own launcher
requeues with the job's original overrides, which would start it over; this one adds
`ckpt_path=<job folder>/checkpoints/last.ckpt` when that file exists, so the job resumes in its
own folder, or `overwrite=true` when the job stopped before its first checkpoint, so it starts
over there without mixing the two attempts' files. How many times a job may be requeued after
hitting its time limit is `max_num_timeout` (slurm.yaml); preemptions do not count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


def resume_overrides(overrides: list[str], job_dir: Path) -> list[str]:
    """The requeued job's overrides: the job's own, resuming from its last.ckpt if it has one,
    or starting over in its folder if not (keeping any ckpt_path it started from)."""
    last = job_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        kept = [o for o in overrides if _key(o) not in ("ckpt_path", "overwrite")]
        return [*kept, f"ckpt_path={last.resolve()}"]
    kept = [o for o in overrides if _key(o) != "overwrite"]
    return [*kept, "overwrite=true"]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


class RequeueingSlurmLauncher(SlurmLauncher):
    def checkpoint(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Any],
    ) -> Any:
        """Called by submitit inside the job at USR2 (see the module docstring); the job's
        folder is the one Hydra is running it in."""
        import submitit  # lazy, as in the parent: plugin discovery stays fast

        job_dir = Path(HydraConfig.get().runtime.output_dir)
        overrides = resume_overrides(list(sweep_overrides), job_dir)
        return submitit.helpers.DelayedSubmission(
            self, overrides, job_dir_key, job_num, job_id, singleton_state
        )
