"""A run prints what its user needs and nothing that looks like a failure."""

from __future__ import annotations

import os
import re
import types

import pytest
import torch
from helpers import TINY_CONV4, run_script

from leo_lightning.training.memory import PeakStepMemory

ALARMING = re.compile(r"ERROR|Traceback|deprecat|💡|^\[W\d", re.IGNORECASE | re.MULTILINE)


@pytest.mark.slow
def test_a_default_debug_fast_train_eval_and_predict_print_nothing_alarming(tmp_path):
    train = run_script("train.py", tmp_path, "debug=fast", *TINY_CONV4)
    assert train.returncode == 0, train.stderr[-2000:]
    assert not ALARMING.findall(train.stderr), train.stderr
    assert "model: " in train.stdout and "parameters" in train.stdout  # its own one-line summary
    (checkpoint,) = (tmp_path / "outputs").glob("runs/*/*/checkpoints/last.ckpt")
    evaluate = run_script("eval.py", tmp_path, f"ckpt_path={checkpoint}")
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert not ALARMING.findall(evaluate.stderr), evaluate.stderr


def test_the_memory_probe_gives_stderr_back_when_its_step_raises():
    before = os.fstat(2).st_ino
    probe = PeakStepMemory(step=0)
    module = types.SimpleNamespace(device=torch.device("cpu"))
    probe.on_train_batch_start(None, module, None, 0)
    assert os.fstat(2).st_ino != before  # silenced for the profiled step
    probe.on_exception(None, module, RuntimeError("the step failed"))
    assert os.fstat(2).st_ino == before
