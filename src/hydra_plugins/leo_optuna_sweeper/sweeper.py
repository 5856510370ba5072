"""The Hydra-facing sweeper class: checks its settings, then hands the search to `_search`.

Hydra imports every plugin module at the start of every run, so this module stays cheap to
import; Optuna (and SQLAlchemy behind it) is imported only when a search actually starts.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: str,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        params: DictConfig | dict | None,
    ):
        if direction not in ("maximize", "minimize"):
            raise ValueError(
                f"hydra.sweeper.direction: expected maximize or minimize, got {direction!r}"
            )
        for name, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
            if value < 1:
                raise ValueError(f"hydra.sweeper.{name}: expected a positive number, got {value}")
        self.sampler = sampler
        self.direction = direction
        self.study_name = study_name
        self.storage = storage
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.params = OmegaConf.to_container(params) if isinstance(params, DictConfig) else params
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        """The search; one that ends with no completed trial prints why and exits with 2, as
        the commands do for a user's mistake (each trial's own error is in its job's log)."""
        from hydra_plugins.leo_optuna_sweeper._search import NoTrialCompleted, run_search

        try:
            return run_search(self, arguments)
        except NoTrialCompleted as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
