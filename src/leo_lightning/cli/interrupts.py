"""Signals of a training command: SIGTERM and Ctrl-C both stop a run the same way, through a
KeyboardInterrupt that Lightning turns into a saved `interrupted.ckpt` (jobs/callbacks.py)."""

from __future__ import annotations

import os
import signal


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_signals() -> None:
    """SIGTERM saves a checkpoint too; but not in a submitit (SLURM) job, where SIGTERM is part
    of requeueing and submitit's own handler ignores it (hydra/launcher/slurm.yaml). A process
    started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    then installs no Ctrl-C handler: it is restored, so SIGINT always interrupts."""
    if "SUBMITIT_FOLDER" not in os.environ:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
