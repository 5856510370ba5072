"""Run folders: one run per folder (a reused folder is refused, resumed, or overwritten whole),
unique sweep folders, ckpt_path=last, the resume command of a multirun job, SLURM requeueing,
and no folder left behind by a user's mistake."""

from __future__ import annotations

import os
import pickle
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT
from helpers import TINY_CONV4, TINY_RUN, run_script
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from hydra.errors import InstantiationException
from omegaconf import OmegaConf, open_dict

from leo_lightning.config.schemas import register_configs
from leo_lightning.errors import CheckpointError, ConfigError, DataError
from leo_lightning.jobs import run_lock
from leo_lightning.jobs.run_dirs import (
    prepare_job_dir,
    prepare_run_dir,
    prepare_sweep_dir,
    resolve_last,
    resume_command,
    same_job_last_checkpoint,
)
from leo_lightning.jobs.user_errors import remove_empty_run_dir, user_error

register_configs()
setup_globals()  # Hydra's ${now:...} resolver


def composed(*overrides: str, config: str = "train"):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config, overrides=list(overrides), return_hydra_config=True)


def run_config(run_dir: Path, job: str = "train", hydra_overrides=(), **keys):
    """The parts of a composed single-run config that the folder checks read."""
    return OmegaConf.create(
        {
            "hydra": {
                "run": {"dir": str(run_dir)},
                "job": {"name": job},
                "overrides": {"hydra": list(hydra_overrides)},
            },
            "paths": {"output_dir": str(run_dir.parents[2])},
            "ckpt_path": keys.get("ckpt_path"),
            "overwrite": keys.get("overwrite", False),
            **{key: keys[key] for key in ("support_dir", "query_dir") if key in keys},
        }
    )


def old_run(folder: Path) -> Path:
    """A finished run's folder: config, log, checkpoint and results."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("old: true\n")
    (folder / "train.log").write_text("old log\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"old weights")
    (folder / "results.json").write_text("{}\n")
    return folder


def enter_job(tmp_path, job_dir: Path, task=(), mode="RUN", job="train"):
    """Make HydraConfig describe a running job in job_dir with these task overrides."""
    cfg = composed(*task)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(job_dir)
        cfg.hydra.job.name = job
        cfg.hydra.mode = mode
        cfg.hydra.overrides.task = list(task)
        cfg.paths.output_dir = str(tmp_path / "outputs")
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "outputs" / "runs" / "2026-01-01"


# -- item 5: a reused run folder -----------------------------------------------------------------


def test_a_non_empty_run_folder_is_refused_naming_it(runs):
    folder = old_run(runs / "a")
    with pytest.raises(ConfigError, match=f"hydra.run.dir={folder} already holds"):
        prepare_run_dir(run_config(folder), ("train",))
    assert (folder / "checkpoints" / "last.ckpt").read_bytes() == b"old weights"


def test_the_advice_to_resume_is_given_only_where_a_checkpoint_can_resume(runs):
    """A run killed before it saved anything holds no checkpoint: ckpt_path=last would fail."""
    folder = old_run(runs / "a")
    (folder / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(ConfigError, match="already holds") as error:
        prepare_run_dir(run_config(folder), ("train",))
    assert "resume it" not in str(error.value) and "overwrite=true" in str(error.value)


def test_a_new_or_empty_run_folder_is_accepted(runs):
    (runs / "empty").mkdir(parents=True)
    prepare_run_dir(run_config(runs / "empty"), ("train",))
    prepare_run_dir(run_config(runs / "new"), ("train",))


def test_resuming_from_a_checkpoint_inside_the_folder_continues_it(runs):
    folder = old_run(runs / "a")
    prepare_run_dir(
        run_config(folder, ckpt_path=str(folder / "checkpoints" / "last.ckpt")), ("train",)
    )
    assert (folder / "results.json").exists()


def test_a_checkpoint_inside_the_folder_lets_only_training_resume_there(runs):
    folder = old_run(runs / "a")
    config = run_config(folder, job="eval", ckpt_path=str(folder / "checkpoints" / "last.ckpt"))
    with pytest.raises(ConfigError, match="already holds") as error:
        prepare_run_dir(config, ("train",))
    assert "resume it" not in str(error.value)


def test_overwrite_deletes_the_old_run_before_the_new_one_starts(runs):
    folder = old_run(runs / "a")
    prepare_run_dir(run_config(folder, overwrite=True), ("train",))
    # nothing of the old run beside the new config: only the new run's lock
    assert [p.name for p in folder.iterdir()] == [".lock"]


def test_overwrite_never_deletes_a_folder_these_scripts_did_not_write(runs):
    folder = runs / "mine"
    folder.mkdir(parents=True)
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="has no .hydra"):
        prepare_run_dir(run_config(folder, overwrite=True), ("train",))
    assert (folder / "thesis.tex").exists()


def test_overwrite_and_resume_from_the_same_folder_contradict(runs):
    folder = old_run(runs / "a")
    config = run_config(folder, overwrite=True, ckpt_path=str(folder / "checkpoints" / "last.ckpt"))
    with pytest.raises(ConfigError, match="overwrite=true would delete ckpt_path"):
        prepare_run_dir(config, ("train",))
    assert folder.exists()


@pytest.mark.parametrize("job", ["eval", "predict"])
def test_overwrite_never_deletes_the_checkpoint_an_eval_or_predict_reads(runs, job):
    """`eval ckpt_path=R/checkpoints/x.ckpt hydra.run.dir=R overwrite=true` used to delete the
    training run R, checkpoint included, before scoring it."""
    folder = old_run(runs / "a")
    ckpt = folder / "checkpoints" / "last.ckpt"
    config = run_config(folder, job=job, overwrite=True, ckpt_path=str(ckpt))
    with pytest.raises(ConfigError, match=f"would delete ckpt_path={ckpt}.*another folder"):
        prepare_run_dir(config, ("train",))
    assert ckpt.read_bytes() == b"old weights"


def test_overwrite_never_deletes_the_images_a_predict_reads(runs):
    folder = old_run(runs / "a")
    (folder / "query").mkdir()
    config = run_config(folder, job="predict", overwrite=True, query_dir=str(folder / "query"))
    with pytest.raises(ConfigError, match="would delete query_dir="):
        prepare_run_dir(config, ("train",))
    assert (folder / "query").is_dir()


def test_overwrite_is_a_typed_run_level_key():
    assert composed().overwrite is False
    assert composed("overwrite=true").overwrite is True


# -- item 6: sweep folders -----------------------------------------------------------------------


def test_two_multiruns_started_in_the_same_second_get_different_folders():
    while True:
        first, second = composed().hydra.sweep.dir, composed().hydra.sweep.dir
        if first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]:  # same second
            break
    assert first != second


def test_a_non_empty_sweep_folder_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("old")
    cfg = composed(f"hydra.sweep.dir={sweep}")
    with pytest.raises(ConfigError, match=f"hydra.sweep.dir={sweep} already holds"):
        prepare_sweep_dir(cfg)
    prepare_sweep_dir(composed(f"hydra.sweep.dir={sweep}", "overwrite=true"))
    assert not sweep.exists()


def test_an_optuna_study_folder_may_be_continued(tmp_path):
    study = tmp_path / "outputs" / "searches" / "leo_search"
    (study / "0").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEO_OUTPUT_DIR", str(tmp_path / "outputs"))
        prepare_sweep_dir(composed("hparams_search=optuna"))
    assert (study / "0").exists()


def test_a_job_folder_holding_another_runs_files_is_refused_in_the_job(tmp_path):
    job_dir = old_run(tmp_path / "sweep" / "0")
    cfg = enter_job(tmp_path, job_dir, mode="MULTIRUN")
    with pytest.raises(ConfigError, match="already holds"):
        prepare_job_dir(cfg)
    with open_dict(cfg):
        cfg.overwrite = True
    prepare_job_dir(cfg)
    assert sorted(p.name for p in job_dir.iterdir()) == [".hydra", "train.log"]


# -- item 14: ckpt_path=last ---------------------------------------------------------------------


def test_last_with_a_run_folder_is_that_runs_last_checkpoint(runs):
    folder = old_run(runs / "a")
    config = run_config(folder, ckpt_path="last", hydra_overrides=[f"hydra.run.dir={folder}"])
    resolve_last(config)
    assert config.ckpt_path == str((folder / "checkpoints" / "last.ckpt").resolve())
    prepare_run_dir(config, ("train",))  # and it resumes there


def test_last_with_a_run_folder_without_a_last_checkpoint_says_where_it_looked(runs):
    folder = runs / "a"
    (folder / ".hydra").mkdir(parents=True)
    config = run_config(folder, ckpt_path="last", hydra_overrides=[f"hydra.run.dir={folder}"])
    with pytest.raises(CheckpointError, match=f"{folder}/checkpoints/last.ckpt does not exist"):
        resolve_last(config)


def test_last_alone_is_the_newest_run_and_continues_in_its_folder(runs):
    older, newer = old_run(runs / "older"), old_run(runs / "newer")
    os.utime(older / "checkpoints" / "last.ckpt", (time.time() + 60,) * 2)  # written last
    config = run_config(runs / "new", ckpt_path="last")
    resolve_last(config)
    assert config.ckpt_path == str((older / "checkpoints" / "last.ckpt").resolve())
    assert config.hydra.run.dir == str(older.resolve())
    assert newer.exists()


def test_last_without_any_run_names_the_pattern_it_searched(tmp_path):
    with pytest.raises(CheckpointError, match=r"runs/\*/\*/checkpoints/last.ckpt"):
        same_job_last_checkpoint(tmp_path / "outputs", [])


def with_overrides(folder: Path, *overrides: str) -> Path:
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    return folder


def test_last_alone_continues_the_run_of_the_same_command_not_the_newest(runs):
    """A new command (another seed, say) must not continue another experiment in its folder."""
    mine = with_overrides(old_run(runs / "mine"), "seed=1", "model.lr=0.01")
    other = with_overrides(old_run(runs / "other"), "seed=2")
    os.utime(other / "checkpoints" / "last.ckpt", (time.time() + 60,) * 2)  # written last
    config = run_config(runs / "new", ckpt_path="last")
    config.hydra.overrides.task = ["model.lr=0.01", "seed=1", "ckpt_path=last"]
    resolve_last(config)
    assert config.hydra.run.dir == str(mine.resolve())


def test_last_alone_with_no_run_of_the_same_command_is_refused_listing_the_runs(runs):
    other = with_overrides(old_run(runs / "other"), "seed=2")
    config = run_config(runs / "new", ckpt_path="last")
    config.hydra.overrides.task = ["seed=3", "ckpt_path=last"]
    with pytest.raises(CheckpointError, match="overrides \\(seed=3\\)") as error:
        resolve_last(config)
    assert f"{other}  (seed=2)" in str(error.value)


@pytest.fixture
def holder(tmp_path):
    """Another live process, to stand for a run that holds a folder."""
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def test_a_folder_whose_lock_a_live_process_holds_is_refused_naming_it(runs, holder):
    folder = old_run(runs / "a")
    (folder / ".lock").write_text(f"{holder} {socket.gethostname()}\n")
    config = run_config(folder, ckpt_path=str(folder / "checkpoints" / "last.ckpt"))
    with pytest.raises(ConfigError, match=f"in use by a running process {holder}"):
        prepare_run_dir(config, ("train",))  # a resume would attach a second writer


def test_a_stale_lock_of_a_dead_process_is_reported_and_taken_over(runs, caplog):
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = runs / "a"
    folder.mkdir(parents=True)
    (folder / ".lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    prepare_run_dir(run_config(folder), ("train",))
    assert (folder / ".lock").read_text().split()[0] == str(os.getpid())
    assert f"stale lock of process {dead.pid}" in caplog.text
    run_lock.release(folder)
    assert not (folder / ".lock").exists()


@pytest.mark.slow
def test_two_runs_started_into_one_folder_one_runs_and_the_other_is_refused(tmp_path):
    folder = tmp_path / "run"
    args = [*TINY_RUN, *TINY_CONV4, "test=false", f"hydra.run.dir={folder}"]
    env = dict(os.environ, LEO_OUTPUT_DIR=str(tmp_path / "outputs"))
    env["LEO_DATA_DIR"] = str(tmp_path / "data")
    # The first run is long enough to be alive whenever the second checks (a short one could
    # end first, and the second would then see a finished run's files, not a live lock); it is
    # stopped with Ctrl-C once the second has been refused.
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args, "trainer.max_steps=100000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (folder / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_script("train.py", tmp_path, *args)
    still_running = first.poll() is None
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=300)
    assert still_running, first_err[-2000:]
    assert second.returncode == 2
    assert f"in use by a running process {first.pid}" in second.stderr
    assert not (folder / ".lock").exists()  # released at the end, even after Ctrl-C


def test_last_in_a_multirun_job_is_that_jobs_own_checkpoint(tmp_path):
    job_dir = old_run(tmp_path / "sweep" / "3")
    cfg = enter_job(tmp_path, job_dir, mode="MULTIRUN")
    with open_dict(cfg):
        cfg.ckpt_path = "last"
    prepare_job_dir(cfg)  # its own files: a resume, not a collision
    assert cfg.ckpt_path == str((job_dir / "checkpoints" / "last.ckpt").resolve())


# -- item 14: the resume command inside a multirun -----------------------------------------------


def test_resume_command_of_a_multirun_job_is_that_job_alone_in_its_folder(tmp_path, monkeypatch):
    sweep_argv = ["scripts/train.py", "-m", "model.latent_dim=8,16", "trainer.max_steps=5"]
    monkeypatch.setattr(sys, "argv", sweep_argv)
    job_dir = tmp_path / "multiruns" / "x" / "1"
    enter_job(
        tmp_path, job_dir, task=["model.latent_dim=16", "trainer.max_steps=5"], mode="MULTIRUN"
    )
    checkpoint = job_dir / "checkpoints" / "interrupted.ckpt"
    args = shlex.split(resume_command(checkpoint))
    assert args == [
        "python",
        "scripts/train.py",
        "model.latent_dim=16",
        "trainer.max_steps=5",
        f"ckpt_path={checkpoint}",
        f"hydra.run.dir={job_dir}",
    ]


def test_resume_command_quotes_values_for_the_shell(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["scripts/train.py"])
    enter_job(tmp_path, tmp_path / "run", task=["data.source.root='/my data'", "ckpt_path=old"])
    args = shlex.split(resume_command(tmp_path / "run" / "x.ckpt"))
    assert args[2] == "data.source.root='/my data'" and "ckpt_path=old" not in args


# -- item 14: SLURM requeueing -------------------------------------------------------------------


def test_slurm_launcher_requeues_jobs_that_hit_their_time_limit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    launcher = composed("hydra/launcher=slurm").hydra.launcher
    assert launcher._target_.endswith("RequeueingSlurmLauncher")
    assert launcher.max_num_timeout >= 1 and launcher.signal_delay_s >= 60


def test_a_requeued_job_resumes_from_its_own_last_checkpoint(tmp_path):
    """submitit's own checkpoint step (what its USR2 handler runs before `scontrol requeue`):
    the pickled submission that the requeued job runs carries the job's last.ckpt."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from submitit.core.job_environment import _checkpoint
    from submitit.core.utils import DelayedSubmission

    from hydra_plugins.leo_slurm_launcher import RequeueingSlurmLauncher

    job_dir = old_run(tmp_path / "sweep" / "2")
    enter_job(tmp_path, job_dir, mode="MULTIRUN")
    launcher = RequeueingSlurmLauncher(timeout_min=1)
    overrides = ["model.latent_dim=16"]
    delayed = DelayedSubmission(launcher, overrides, "hydra.sweep.dir", 2, "id", {})
    delayed.set_timeout(1, 3)
    pickled = tmp_path / "submitted.pkl"
    assert _checkpoint(delayed, pickled, countdown=2) == ""  # "" means: requeue

    with pickled.open("rb") as handle:
        requeued = pickle.load(handle)
    new_overrides, job_dir_key, job_num = requeued.args[:3]
    last = (job_dir / "checkpoints" / "last.ckpt").resolve()
    assert new_overrides == ["model.latent_dim=16", f"ckpt_path={last}"]
    assert (job_dir_key, job_num) == ("hydra.sweep.dir", 2)  # the same job folder


def test_a_job_requeued_before_its_first_checkpoint_starts_over_in_its_folder(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra_plugins.leo_slurm_launcher._launcher import resume_overrides

    started = ["ckpt_path=/pretrained.ckpt", "model.lr=0.01"]
    assert resume_overrides(started, tmp_path) == [*started, "overwrite=true"]


# -- item 13: a user's mistake leaves no folder behind -------------------------------------------


def test_a_user_error_wrapped_by_hydra_instantiate_is_recognised():
    cause = DataError("data.source.root /x is not a directory")
    try:
        raise InstantiationException("Error in call to target") from cause
    except InstantiationException as wrapped:
        assert user_error(wrapped) is cause
    assert user_error(RuntimeError("a bug")) is None


def test_a_failed_runs_folder_is_removed_only_if_it_holds_nothing(tmp_path):
    output = tmp_path / "outputs"
    empty, kept = output / "runs" / "d" / "empty", old_run(output / "runs" / "d" / "kept")
    (empty / ".hydra").mkdir(parents=True)
    (empty / "train.log").write_text("Seed set to 42\n")
    cfg = enter_job(tmp_path, empty)
    assert remove_empty_run_dir(cfg) and not empty.exists()
    enter_job(tmp_path, kept)
    assert not remove_empty_run_dir(cfg) and (kept / "checkpoints" / "last.ckpt").exists()


@pytest.fixture(autouse=True)
def _no_hydra_config_left():
    yield
    HydraConfig.instance().cfg = None


# -- end to end ----------------------------------------------------------------------------------

TINY = [*TINY_RUN, *TINY_CONV4, "data.val_episodes=4", "trainer.max_steps=4", "test=false"]


def run_dirs_under(tmp_path) -> list[Path]:
    return sorted((tmp_path / "outputs").glob("runs/*/*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("train.py", ["data=folder", "data.source.root=/nowhere"], "data.source.root"),
        ("train.py", ["ckpt_path=/nowhere/last.ckpt"], "ckpt_path='/nowhere/last.ckpt'"),
        ("eval.py", ["ckpt_path=/nowhere/last.ckpt"], "ckpt_path='/nowhere/last.ckpt'"),
        ("predict.py", ["ckpt_path=/nowhere.ckpt", "support_dir=/s", "query_dir=/q"], "nowhere"),
    ],
    ids=["train-data", "train-ckpt", "eval", "predict"],
)
def test_a_users_mistake_prints_one_message_and_leaves_no_folder(tmp_path, script, args, message):
    proc = run_script(script, tmp_path, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and message in proc.stderr
    assert run_dirs_under(tmp_path) == []


@pytest.mark.slow
def test_hydra_full_error_still_shows_the_traceback(tmp_path):
    proc = run_script("train.py", tmp_path, "ckpt_path=/nowhere.ckpt", HYDRA_FULL_ERROR="1")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "CheckpointError" in proc.stderr


@pytest.mark.slow
def test_a_reused_run_folder_is_refused_overwritten_or_resumed_never_mixed(tmp_path):
    folder = tmp_path / "run"
    first = run_script("train.py", tmp_path, *TINY, f"hydra.run.dir={folder}")
    assert first.returncode == 0, first.stderr[-3000:]
    config = (folder / ".hydra" / "config.yaml").read_text()

    again = run_script("train.py", tmp_path, *TINY, "seed=7", f"hydra.run.dir={folder}")
    assert again.returncode == 2 and f"hydra.run.dir={folder} already holds" in again.stderr
    assert (folder / ".hydra" / "config.yaml").read_text() == config  # untouched

    resumed = run_script(
        "train.py",
        tmp_path,
        *TINY,
        "trainer.max_steps=6",
        "ckpt_path=last",
        f"hydra.run.dir={folder}",
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    replaced = run_script(
        "train.py", tmp_path, *TINY, "seed=7", "overwrite=true", f"hydra.run.dir={folder}"
    )
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert "seed: 7" in (folder / ".hydra" / "config.yaml").read_text()
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not list(folder.rglob("*-v1*"))  # no second run's files beside the first's


@pytest.mark.slow
def test_a_multirun_jobs_mistake_fails_that_job_with_its_message_alone(tmp_path):
    proc = run_script("train.py", tmp_path, "-m", *TINY, "ckpt_path=/nowhere.ckpt")
    assert proc.returncode != 0
    assert (
        "Traceback" not in proc.stderr and "ckpt_path='/nowhere.ckpt': no such file" in proc.stderr
    )
    (sweep,) = (tmp_path / "outputs" / "multiruns").glob("*/*")
    assert not (sweep / "0").exists()  # the job's empty folder is gone; the sweep's record stays
