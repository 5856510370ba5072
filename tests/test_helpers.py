"""The test harness itself: a subprocess that times out leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers import run_command

# Starts a child that sleeps, prints its pid, then sleeps itself: a script and the DDP rank it
# started, in miniature.
PARENT = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
    "print(child.pid, flush=True); time.sleep(60)"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_timed_out_command_leaves_none_of_its_children_running(tmp_path):
    out = tmp_path / "pid"
    command = [
        sys.executable,
        "-c",
        PARENT.replace("flush=True", f"file=open({str(out)!r}, 'w'), flush=True"),
    ]
    with pytest.raises(subprocess.TimeoutExpired):
        run_command(command, dict(os.environ), timeout=3)
    child = int(out.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)
