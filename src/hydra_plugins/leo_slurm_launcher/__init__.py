"""Hydra's submitit SLURM launcher, with a job that hits its time limit (or is preempted)
requeued to resume from its own last.ckpt: `hydra/launcher=slurm` (conf/hydra/launcher/).

The launcher lives in `_launcher.py`, which Hydra's plugin scan skips (leading underscore); it
is imported here only when the optional submitit launcher is installed (pip extra `slurm`), so
that without it Hydra does not warn about a plugin it cannot import on every run.
"""

from importlib.util import find_spec

if find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
    from hydra_plugins.leo_slurm_launcher._launcher import RequeueingSlurmLauncher

    __all__ = ["RequeueingSlurmLauncher"]
