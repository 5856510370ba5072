"""Ask Optuna for trials, launch them through Hydra's launcher, tell Optuna what they returned.

Trial i runs in job directory i of the sweep (`hydra.job.num` = trial number), so a study and
its run directories line up, also across interrupted and continued searches. A job that
raises, returns nothing or returns a non-finite value is told to Optuna as a failed trial. A
trial cut off by an interruption (Ctrl-C, SIGTERM, a killed process) is failed and its
parameters are queued, so continuing the search runs it again.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.trial import TrialState

from hydra_plugins.leo_optuna_sweeper._search_space import SearchSpace, build_search_space

if TYPE_CHECKING:
    from hydra_plugins.leo_optuna_sweeper.sweeper import OptunaSweeper

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
RETRY_OF = "retry_of"  # user attribute of a trial that reruns an interrupted one


def run_search(sweeper: OptunaSweeper, arguments: list[str]) -> optuna.Study:
    space = build_search_space(sweeper.params or {}, arguments)
    if not space.dimensions:
        raise ValueError(
            "the Optuna sweeper has nothing to search: set hydra.sweeper.params or sweep a key "
            "on the command line (e.g. model.latent_dim=32,64)"
        )
    study = open_study(sweeper)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # Still running at the start: cut off by an interrupted search of this same study
        # (one sweeper process drives a study at a time).
        fail_and_requeue(study, trial.number, trial.params)
    sweep_dir = Path(sweeper.config.hydra.sweep.dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    log.info(
        "Optuna study %r (%s): %d of %d trials finished; searching %s",
        sweeper.study_name,
        sweeper.storage or "in memory",
        count_finished(study),
        sweeper.n_trials,
        "; ".join(f"{d.key} ~ {d.distribution}" for d in space.dimensions),
    )
    while (remaining := sweeper.n_trials - count_finished(study)) > 0:
        run_batch(sweeper, study, space, min(sweeper.n_jobs, remaining))
    write_summary(sweeper, study, sweep_dir)
    return study


def open_study(sweeper: OptunaSweeper) -> optuna.Study:
    storage = sweeper.storage
    if storage and storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    sampler = sweeper.sampler  # Hydra builds it with the sweeper; a plain config is built here
    if sampler is not None and not isinstance(sampler, optuna.samplers.BaseSampler):
        sampler = instantiate(sampler)
    return optuna.create_study(
        study_name=sweeper.study_name,
        storage=storage,
        sampler=sampler,
        direction=sweeper.direction,
        load_if_exists=True,
    )


def run_batch(sweeper: OptunaSweeper, study: optuna.Study, space: SearchSpace, size: int) -> None:
    trials = [study.ask(space.distributions) for _ in range(size)]
    batch = [tuple(space.overrides(trial.params)) for trial in trials]
    try:
        sweeper.validate_batch_is_legal(batch)
        jobs = sweeper.launcher.launch(batch, initial_job_idx=trials[0].number)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: these trials run again when continuing
        for trial in trials:
            fail_and_requeue(study, trial.number, trial.params)
        raise
    except BaseException:  # e.g. a config error: leave no trial RUNNING behind
        for trial in trials:
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    for trial, overrides, job in zip(trials, batch, jobs):
        trial.set_user_attr("overrides", list(overrides))
        trial.set_user_attr("job_dir", job_dir(job))
        value, problem = objective(job)
        if problem is None:
            study.tell(trial, value)
        else:
            log.warning("trial %d failed: %s", trial.number, problem)
            trial.set_user_attr("failure", problem)
            study.tell(trial, state=TrialState.FAIL)


def job_dir(job: Any) -> str | None:
    """Where the job wrote its outputs (Hydra's runtime output dir)."""
    hydra_cfg = getattr(job, "hydra_cfg", None)
    return OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir") if hydra_cfg else None


def objective(job: Any) -> tuple[float | None, str | None]:
    """The job's return value as the trial's objective, or why there is none."""
    try:
        value = job.return_value  # re-raises the job's exception if it failed
    except Exception as error:  # any failure of one job is a failed trial, not a failed search
        return None, f"{type(error).__name__}: {error}"
    if value is None:
        return None, "the task function returned None (is optimized_metric in its results?)"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, f"the task function returned {value!r}, not a number"
    if not math.isfinite(value):
        return None, f"the task function returned {value}"
    return value, None


def fail_and_requeue(study: optuna.Study, number: int, params: dict[str, Any]) -> None:
    log.warning("trial %d was interrupted: failing it and queueing its parameters again", number)
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(params, user_attrs={RETRY_OF: number})


def count_finished(study: optuna.Study) -> int:
    """Finished trials, where an interrupted trial and its queued retry count as one."""
    trials = study.get_trials(deepcopy=False)
    finished = sum(trial.state in FINISHED for trial in trials)
    return finished - sum(RETRY_OF in trial.user_attrs for trial in trials)


def write_summary(sweeper: OptunaSweeper, study: optuna.Study, sweep_dir: Path) -> None:
    """optimization_results.yaml in the sweep dir: the best trial and how the others ended."""
    counts = {state.name.lower(): 0 for state in FINISHED}
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        counts[trial.state.name.lower()] += 1
    summary: dict[str, Any] = {
        "study_name": sweeper.study_name,
        "storage": sweeper.storage,
        "direction": sweeper.direction,
        "trials": counts,
    }
    if counts["complete"]:
        best = study.best_trial
        summary.update(
            best_value=best.value,
            best_params=best.params,
            best_trial=best.number,
            best_overrides=best.user_attrs.get("overrides"),
            best_job_dir=best.user_attrs.get("job_dir"),
        )
        log.info("best value %s in trial %d: %s", best.value, best.number, best.params)
    OmegaConf.save(OmegaConf.create(summary), sweep_dir / "optimization_results.yaml")
    if not counts["complete"]:
        raise NoTrialCompleted(
            f"no trial of study {sweeper.study_name!r} completed; see the job logs under "
            f"{sweep_dir}"
        )


class NoTrialCompleted(RuntimeError):
    """Every trial of a search failed: there is no best trial to report."""
