"""Sweeps: Hydra's basic multirun, and the Optuna sweeper (search space, trials, continuing).

The Optuna search loop is tested against a stand-in launcher (fast, deterministic); the real
thing runs once in miniature through scripts/train.py.
"""

from __future__ import annotations

import json
import math

import optuna
import pytest
import yaml
from conftest import ROOT
from helpers import TINY_RUN, hparams_record, run_script
from hydra import compose, initialize_config_dir
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.leo_optuna_sweeper._search_space import (
    SearchSpaceError,
    build_search_space,
    format_value,
)
from hydra_plugins.leo_optuna_sweeper.sweeper import OptunaSweeper
from leo_lightning.config.schemas import register_configs

register_configs()

# -- the search space ----------------------------------------------------------------------------


def test_choice_becomes_categorical_over_typed_values():
    space = build_search_space({"model.latent_dim": "choice(16, 32, 64)"}, [])
    (dim,) = space.dimensions
    assert dim.distribution == CategoricalDistribution([16, 32, 64])
    assert space.overrides({"model.latent_dim": 32}) == ["model.latent_dim=32"]


def test_command_line_comma_sweep_of_a_group_is_a_choice():
    space = build_search_space({}, ["strategy=universal,amortized"])
    assert space.distributions == {"strategy": CategoricalDistribution(["universal", "amortized"])}
    assert space.overrides({"strategy": "amortized"}) == ["strategy=amortized"]


def test_yaml_list_is_a_choice():
    space = build_search_space({"model.first_order": [True, False]}, [])
    assert space.overrides({"model.first_order": False}) == ["model.first_order=false"]


def test_nested_params_mean_dotted_keys():
    space = build_search_space({"model": {"lr": "interval(0.001, 0.01)"}}, [])
    assert space.distributions == {"model.lr": FloatDistribution(0.001, 0.01)}


def test_log_interval_becomes_log_uniform_float():
    space = build_search_space({"model.lr": "tag(log, interval(1e-4, 1e-2))"}, [])
    assert space.distributions["model.lr"] == FloatDistribution(1e-4, 1e-2, log=True)


def test_int_tagged_interval_becomes_integer_distribution():
    space = build_search_space({"model.inner_steps": "tag(int, interval(1, 10))"}, [])
    assert space.distributions["model.inner_steps"] == IntDistribution(1, 10)


def test_range_excludes_its_stop_like_python():
    space = build_search_space({"x": "range(1, 8, 2)", "y": "range(0.1, 1.0, 0.2)"}, [])
    assert space.distributions["x"] == IntDistribution(1, 7, step=2)
    y = space.distributions["y"]
    assert (y.low, y.step) == (0.1, 0.2) and math.isclose(y.high, 0.9)


def test_command_line_key_replaces_the_same_key_of_params():
    space = build_search_space(
        {"model.latent_dim": "choice(16, 32)", "model.lr": "interval(0.001, 0.01)"},
        ["model.latent_dim=8", "trainer.max_steps=3"],
    )
    assert [d.key for d in space.dimensions] == ["model.lr"]
    assert space.fixed == ("model.latent_dim=8", "trainer.max_steps=3")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model.lr": "tag(cosine, interval(0.1, 1))"}, "model.lr: unknown tag"),
        ({"model.lr": "interval(1, 0.1)"}, "model.lr: interval(low, high) needs low < high"),
        ({"model.lr": "tag(log, interval(0, 1))"}, "low > 0 for tag log"),
        ({"model.inner_steps": "range(5, 1)"}, "model.inner_steps: range(start, stop, step)"),
        ({"model.dropout": "choice(0.1, 0.1)"}, "model.dropout: repeated choice"),
        ({"model.dropout": {1, 2}}, "hydra.sweeper.params.model.dropout: expected a sweep"),
    ],
)
def test_bad_search_space_entry_names_its_key(params, expected):
    with pytest.raises(SearchSpaceError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        build_search_space(params, [])


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), (True, "true"), (3, "3"), (1e-05, "1e-05"), ("amortized", "amortized")],
)
def test_sampled_values_are_written_as_hydra_override_text(value, text):
    assert format_value(value) == text


def test_strings_outside_the_bare_grammar_are_quoted():
    assert format_value("a b'c") == "'a b\\'c'"


# -- the search loop, against a stand-in launcher ------------------------------------------------


class StandInLauncher:
    """Runs 'jobs' by calling `job(overrides) -> value`; an exception fails that job."""

    def __init__(self, job):
        self.job = job
        self.calls: list[tuple[int, int]] = []  # (initial_job_idx, batch size)

    def launch(self, batch, initial_job_idx):
        self.calls.append((initial_job_idx, len(batch)))
        returns = []
        for overrides in batch:
            ret = JobReturn(overrides=list(overrides))
            try:
                ret.return_value = self.job(dict(o.split("=", 1) for o in overrides))
                ret.status = JobStatus.COMPLETED
            except Exception as error:
                ret.return_value, ret.status = error, JobStatus.FAILED
            returns.append(ret)
        return returns


def make_sweeper(tmp_path, job, n_trials=4, n_jobs=1, storage=None, seed=0):
    sweeper = OptunaSweeper(
        sampler=optuna.samplers.RandomSampler(seed=seed),
        direction="maximize",
        study_name="test",
        storage=storage,
        n_trials=n_trials,
        n_jobs=n_jobs,
        params={"x": "range(0, 10)"},
    )
    sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    sweeper.launcher = StandInLauncher(job)
    sweeper.validate_batch_is_legal = lambda batch: None  # composition is tested end to end
    return sweeper


def peak_at_3(overrides):
    return -((int(overrides["x"]) - 3) ** 2)


def test_trial_number_is_the_job_number_and_batches_are_n_jobs_long(tmp_path):
    sweeper = make_sweeper(tmp_path, peak_at_3, n_trials=5, n_jobs=2)
    study = sweeper.sweep([])
    assert sweeper.launcher.calls == [(0, 2), (2, 2), (4, 1)]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5


def test_summary_names_the_best_trial(tmp_path):
    study = make_sweeper(tmp_path, peak_at_3, n_trials=6).sweep([])
    summary = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert summary["best_value"] == study.best_value == max(t.value for t in study.trials)
    assert summary["best_params"] == study.best_params
    assert summary["trials"] == {"complete": 6, "fail": 0, "pruned": 0}


@pytest.mark.parametrize(
    "bad", [None, float("nan"), "not a number", ValueError("diverged")], ids=repr
)
def test_a_job_without_a_finite_result_is_a_failed_trial_and_the_search_goes_on(tmp_path, bad):
    def job(overrides):
        if int(overrides["x"]) % 2:
            if isinstance(bad, Exception):
                raise bad
            return bad
        return 1.0

    study = make_sweeper(tmp_path, job, n_trials=8).sweep([])
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(study.trials) == 8 and failed
    assert all(int(t.params["x"]) % 2 for t in failed)
    assert all(t.user_attrs["failure"] for t in failed)


def test_a_search_where_every_trial_failed_is_an_error(tmp_path, capsys):
    def job(overrides):
        raise RuntimeError("broken")

    with pytest.raises(SystemExit) as exit_:
        make_sweeper(tmp_path, job, n_trials=2).sweep([])
    assert exit_.value.code == 2
    assert "no trial of study 'test' completed" in capsys.readouterr().err


def test_an_interrupted_batch_reruns_when_the_search_continues(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    cut = []

    def interrupted(overrides):
        cut.append(overrides["x"])
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM turned into one by train.py

    with pytest.raises(KeyboardInterrupt):
        make_sweeper(tmp_path, interrupted, n_trials=3, storage=storage).sweep([])
    study = make_sweeper(tmp_path, peak_at_3, n_trials=3, storage=storage, seed=1).sweep([])
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL] + [TrialState.COMPLETE] * 3  # the cut trial, then 3
    assert str(study.trials[1].params["x"]) == cut[0]  # rerun first, with the same params
    assert study.trials[1].user_attrs["retry_of"] == 0


def test_a_trial_left_running_by_a_killed_search_reruns(tmp_path):
    storage = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="test", storage=storage, direction="maximize")
    killed = study.ask({"x": IntDistribution(0, 9)})  # RUNNING forever: its process died

    study = make_sweeper(tmp_path, peak_at_3, n_trials=2, storage=storage).sweep([])
    assert study.trials[0].state == TrialState.FAIL
    assert study.trials[1].params == killed.params
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 2


def test_nothing_to_search_is_an_error(tmp_path):
    sweeper = make_sweeper(tmp_path, peak_at_3)
    sweeper.params = {"x": 3}
    with pytest.raises(ValueError, match="nothing to search"):
        sweeper.sweep([])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("direction", "up", "hydra.sweeper.direction"), ("n_trials", 0, "hydra.sweeper.n_trials")],
)
def test_bad_sweeper_settings_name_the_key(key, value, expected):
    kwargs = dict(
        sampler=None,
        direction="maximize",
        study_name="s",
        storage=None,
        n_trials=1,
        n_jobs=1,
        params={},
    )
    kwargs[key] = value
    with pytest.raises(ValueError, match=expected):
        OptunaSweeper(**kwargs)


# -- the real thing, in miniature ----------------------------------------------------------------

SHORT = [
    *TINY_RUN,
    "model.backbone.channels=8",
    "data.eval_batch_size=16",
    "data.val_episodes=8",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.enable_model_summary=false",
]
TINY = [*SHORT, "model.latent_dim=8"]


@pytest.mark.slow
def test_optuna_search_runs_trials_in_numbered_dirs_and_continues(tmp_path):
    search = tmp_path / "outputs" / "searches" / "leo_search"
    proc = run_script(
        "train.py", tmp_path, "-m", "hparams_search=optuna", *TINY, "hydra.sweeper.n_trials=3"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="leo_search", storage=f"sqlite:///{search}/optuna.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    for trial in study.trials:  # each trial's value is its job's best validation accuracy
        results = json.loads((search / str(trial.number) / "results.json").read_text())
        assert trial.value == pytest.approx(results["best_val_acc"])
        assert "test/acc" not in results  # a search chooses on validation only
        assert "model.latent_dim" not in trial.params  # fixed on the command line
    summary = yaml.safe_load((search / "optimization_results.yaml").read_text())
    assert summary["best_value"] == pytest.approx(max(t.value for t in study.trials))
    assert set(summary["best_params"]) >= {"model.lr", "model.inner_lr", "model.dropout"}

    proc = run_script(
        "train.py", tmp_path, "-m", "hparams_search=optuna", *TINY, "hydra.sweeper.n_trials=4"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="leo_search", storage=f"sqlite:///{search}/optuna.db")
    assert len(study.trials) == 4 and (search / "3" / "results.json").exists()


@pytest.mark.slow
def test_an_invalid_sampled_value_fails_its_trial_with_the_validation_message(tmp_path):
    search = tmp_path / "outputs" / "searches" / "leo_search"
    proc = run_script(
        "train.py",
        tmp_path,
        "-m",
        "hparams_search=optuna",
        *TINY,
        "hydra.sweeper.n_trials=1",
        "model.dropout=choice(1.5)",
    )
    assert proc.returncode == 2
    assert "no trial of study 'leo_search' completed" in proc.stderr
    assert "Traceback" not in proc.stderr
    study = optuna.load_study(study_name="leo_search", storage=f"sqlite:///{search}/optuna.db")
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL and "model.dropout" in trial.user_attrs["failure"]


@pytest.mark.slow
def test_basic_multirun_gives_each_job_its_own_dir(tmp_path):
    proc = run_script(
        "train.py", tmp_path, "-m", "model.latent_dim=32,64,128", *SHORT, "test=false"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "multiruns").glob("*/*")
    dims = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        dims[job.name] = config["model"]["latent_dim"]
        assert (job / "results.json").exists()
        assert list((job / "checkpoints").glob("*.ckpt"))
        (label,) = (job / "tensorboard").iterdir()  # TensorBoard names the run by what it varies
        assert label.name.startswith(f"model.latent_dim={dims[job.name]},")
        infos = hparams_record(job, "experiment").hparam_infos  # and its HParams column first
        assert {info.name for info in infos if info.differs} == {"model.latent_dim"}
    assert dims == {"0": 32, "1": 64, "2": 128}


# -- launching on SLURM --------------------------------------------------------------------------


def test_slurm_launcher_gives_lightning_one_task_per_device():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("leo_slurm_launcher._launcher.RequeueingSlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
