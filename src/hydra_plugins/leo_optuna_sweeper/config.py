"""The sweeper's config node, registered as `hydra/sweeper=leo_optuna`."""

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.leo_optuna_sweeper.sweeper.OptunaSweeper"
    # Any Optuna sampler, built with hydra.utils.instantiate.
    sampler: Any = field(
        default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None}
    )
    direction: str = "maximize"  # or "minimize": what to do with the task function's return
    study_name: str = "leo"
    # An Optuna storage URL; with one (e.g. sqlite:///path/study.db) rerunning the same command
    # continues the study. null keeps the study in memory.
    storage: Optional[str] = None  # noqa: UP045 - OmegaConf needs Optional, not `str | None`
    n_trials: int = 20  # finished trials (complete or failed) the study should hold
    n_jobs: int = 1  # trials asked for and launched together in one batch
    # Search space: key -> Hydra sweep, e.g. "choice(32, 64)", "tag(log, interval(1e-4, 1e-2))",
    # "range(1, 8)", "tag(int, interval(1, 10))".
    params: dict[str, Any] = field(default_factory=dict)


ConfigStore.instance().store(
    group="hydra/sweeper", name="leo_optuna", node=OptunaSweeperConf, provider="leo_lightning"
)
