"""Interrupted runs lose nothing: SIGKILL leaves a loadable last.ckpt that resumes, and Ctrl-C
saves a checkpoint, exits non-zero and says how to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from helpers import TINY_CONV4, TINY_RUN, quiet_trainer, random_image_datamodule, tiny_module
from lightning.pytorch.callbacks import Callback

from leo_lightning.jobs.callbacks import CheckpointOnInterrupt

pytestmark = pytest.mark.slow

# A budget no run reaches in a test: the tiny model makes a step in milliseconds, so a run with
# a small max_steps could finish before the signal arrives.
ENDLESS = "trainer.max_steps=10000000"

TINY = [*TINY_RUN, *TINY_CONV4, "data.val_episodes=4", "trainer.val_check_interval=3"]


@pytest.fixture
def start(tmp_path):
    """Starts train.py runs; any still running when the test ends is killed, so a failing test
    leaves no endless run behind."""
    runs = []

    def start_run(*overrides):
        runs.append(_start(tmp_path, *overrides))
        return runs[-1]

    yield start_run
    for proc in runs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(tmp_path, *overrides):
    """Start train.py; stdout is discarded, stderr goes to a file (a pipe could fill and block)."""
    env = dict(os.environ, LEO_OUTPUT_DIR=str(tmp_path / "outputs"))
    env["LEO_DATA_DIR"] = str(tmp_path / "data")
    log = open(tmp_path / f"stderr-{time.monotonic_ns()}.txt", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *TINY, *overrides],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    proc.stderr_file = log
    return proc


def finish(proc, timeout):
    """Wait for the process; its return code and everything it wrote to stderr."""
    proc.wait(timeout=timeout)
    proc.stderr_file.seek(0)
    return proc.returncode, proc.stderr_file.read()


def wait_for_checkpoint_step(tmp_path, proc, min_step, timeout=240):
    """Poll last.ckpt until it holds at least `min_step` steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc, 10)[1][-2000:]
        for path in (tmp_path / "outputs").glob("runs/*/*/checkpoints/last.ckpt"):
            try:
                if torch.load(path, weights_only=True)["global_step"] >= min_step:
                    return path
            except Exception:  # noqa: BLE001 - being written or replaced right now; poll again
                pass
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


def test_sigkill_leaves_a_loadable_last_checkpoint_that_resumes(tmp_path, start):
    proc = start(ENDLESS)
    last = wait_for_checkpoint_step(tmp_path, proc, min_step=6)
    time.sleep(0.5)  # kill at an arbitrary moment, likely mid-step or mid-save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(last, weights_only=True)["global_step"]
    assert step >= 6

    resumed = start(f"ckpt_path={last}", f"trainer.max_steps={step + 3}")
    returncode, stderr = finish(resumed, timeout=300)
    assert returncode == 0, stderr[-3000:]
    assert "Restoring states from the checkpoint" in stderr or "Restored all states" in stderr


def test_sigkill_before_the_first_validation_leaves_a_last_checkpoint_that_resumes(tmp_path, start):
    no_validation = "trainer.val_check_interval=1000000"
    proc = start(ENDLESS, no_validation, "callbacks.last_checkpoint.every_n_steps=2")
    last = wait_for_checkpoint_step(tmp_path, proc, min_step=4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(last.parent.glob("best-*.ckpt"))  # no validation has run
    step = torch.load(last, weights_only=True)["global_step"]

    resumed = start(f"ckpt_path={last}", f"trainer.max_steps={step + 2}", "test=false")
    returncode, stderr = finish(resumed, timeout=300)
    assert returncode == 0, stderr[-3000:]
    assert "Restoring states from the checkpoint" in stderr or "Restored all states" in stderr


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, start):
    proc = start(ENDLESS)
    last = wait_for_checkpoint_step(tmp_path, proc, min_step=3)
    proc.send_signal(signal.SIGINT)
    returncode, stderr = finish(proc, timeout=120)
    assert returncode != 0
    interrupted = last.parent / "interrupted.ckpt"
    assert torch.load(interrupted, weights_only=True)["global_step"] >= 3
    assert "resume with: python" in stderr and f"ckpt_path={interrupted}" in stderr
    assert (last.parents[1] / "train.log").stat().st_size > 0


def test_ctrl_c_during_validation_saves_a_checkpoint_that_resumes(tmp_path):
    class CtrlCInValidation(Callback):
        def on_validation_batch_start(self, trainer, *args):
            if trainer.global_step >= 2:
                raise KeyboardInterrupt

    saver = CheckpointOnInterrupt(str(tmp_path))
    trainer = quiet_trainer(
        max_steps=10, val_check_interval=2, callbacks=[saver, CtrlCInValidation()]
    )
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while it shuts down
    try:
        with pytest.raises(SystemExit, match="1"):
            trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert torch.load(saver.path, weights_only=True)["global_step"] == 2

    resumed = quiet_trainer(max_steps=4, val_check_interval=2)
    resumed.fit(tiny_module(), datamodule=random_image_datamodule(), ckpt_path=saver.path)
    assert resumed.global_step == 4


def test_ctrl_c_with_an_unwritable_folder_fails_loudly_and_never_says_saved(
    tmp_path, monkeypatch, capsys
):
    from helpers import unwritable

    from leo_lightning.errors import CheckpointError

    class CtrlCInTraining(Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step >= 2:
                raise KeyboardInterrupt

    saver = CheckpointOnInterrupt(str(tmp_path / "checkpoints"))
    saver.dirpath.mkdir()
    # Lightning's own save, which drops the PermissionError: the callback must notice.
    trainer = quiet_trainer(max_steps=10, callbacks=[saver, CtrlCInTraining()])
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores SIGINT while it shuts down
    try:
        with (
            unwritable(saver.dirpath, monkeypatch),
            pytest.raises(CheckpointError, match="no checkpoint was written"),
        ):
            trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    finally:
        signal.signal(signal.SIGINT, sigint)
    assert "checkpoint saved" not in capsys.readouterr().err
