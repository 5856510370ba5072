"""A run prints what its user needs and nothing that looks like a failure (every README command is
checked with ALARMING, from an installed wheel, in test_readme_commands.py)."""

from __future__ import annotations

import os
import re
import types

import torch

from leo_lightning.training.memory import PeakStepMemory

# What looks like a failure to a user reading a run's console
ALARMING = re.compile(r"ERROR|Traceback|deprecat|💡|^\[W\d", re.IGNORECASE | re.MULTILINE)


def test_the_memory_probe_gives_stderr_back_when_its_step_raises():
    before = os.fstat(2).st_ino
    probe = PeakStepMemory(step=0)
    module = types.SimpleNamespace(device=torch.device("cpu"))
    probe.on_train_batch_start(None, module, None, 0)
    assert os.fstat(2).st_ino != before  # silenced for the profiled step
    probe.on_exception(None, module, RuntimeError("the step failed"))
    assert os.fstat(2).st_ino == before
