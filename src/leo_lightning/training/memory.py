"""The memory one meta-training step needs, measured once per run for the comparison table.

Measured on one step, the process's second (the first also creates the optimizer's state and
the gradient buffers that later steps reuse), as the peak of tensor memory allocated during the
step above what was allocated when it began: the step's working set (activations, the graph of
the inner loop, gradients), not the weights.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, less the memory
  allocated at the start of the step.
- CPU: the peak of the running sum of tensor allocations minus frees in torch.profiler's memory
  timeline of that step (`profile_memory=True`; the timeline is `torch.profiler`'s private
  `_memory_profile`, so a torch without it records null and says so in the log). The profiler's
  native library prints trace lines when it starts and stops, an "ERROR ... gpuGetDeviceCount
  failed" line on a machine without a GPU, and a CPUAllocator warning when a tensor from before
  the step is freed in it, all straight to the process's stderr. So for that one step the
  process's stderr goes to /dev/null (`native_stderr_silenced`): a run prints nothing that looks
  like a failure. What Python logs during the step still reaches the run's log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

CUDA_SOURCE = "torch.cuda.max_memory_allocated"
CPU_SOURCE = "torch.profiler memory timeline"


class PeakStepMemory(Callback):
    """Records `peak_mb` (MiB) and `source` for the `step`-th training step of this process."""

    def __init__(self, step: int = 1):
        self.step, self.seen = step, 0
        self.peak_mb: float | None = None
        self.source: str | None = None
        self._profiler = None
        self._silenced = None
        self._start_bytes = 0

    def on_train_batch_start(self, trainer: L.Trainer, module, batch, batch_idx: int) -> None:
        if self.seen != self.step:
            return
        device = module.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self._start_bytes = torch.cuda.memory_allocated(device)
        elif device.type == "cpu":
            self._profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU],
                profile_memory=True,
                record_shapes=True,
                with_stack=True,
            )
            self._silenced = native_stderr_silenced()
            self._silenced.__enter__()  # until the profiler has stopped (on_train_batch_end)
            self._profiler.start()

    def on_train_batch_end(self, trainer: L.Trainer, module, outputs, batch, batch_idx) -> None:
        self.seen += 1
        if self.seen != self.step + 1:
            return
        device = module.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - self._start_bytes
            self.peak_mb, self.source = peak / 2**20, CUDA_SOURCE
        elif self._profiler is not None:
            try:
                self._profiler.stop()
                peak = cpu_peak_bytes(self._profiler)
            finally:
                self._profiler = None
                self._speak_again()
            if peak is not None:
                self.peak_mb, self.source = peak / 2**20, CPU_SOURCE

    def on_exception(self, trainer: L.Trainer, module, exception: BaseException) -> None:
        """A step that raised never reaches on_train_batch_end: its error must be heard."""
        if self._profiler is not None:
            try:
                self._profiler.stop()
            finally:
                self._profiler = None
                self._speak_again()

    def _speak_again(self) -> None:
        if self._silenced is not None:
            self._silenced.__exit__(None, None, None)
            self._silenced = None

    def record(self) -> dict:
        return {"peak_step_memory_mb": self.peak_mb, "peak_step_memory_source": self.source}


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block (what C++ code writes there is
    dropped); Python's own sys.stderr is flushed first and works again after it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_peak_bytes(profiler: torch.profiler.profile) -> int | None:
    """Peak of (bytes created - bytes destroyed) over the profiled interval, from the
    profiler's memory timeline; None where this torch has no such timeline."""
    try:
        from torch.profiler._memory_profiler import Action

        timeline = profiler._memory_profile().timeline
    except Exception as error:  # a private API: tolerate its absence or change
        log.warning("no CPU memory timeline from torch.profiler (%s): memory not recorded", error)
        return None
    change = {Action.CREATE: 1, Action.DESTROY: -1}
    running = peak = 0
    for _, action, _, size in sorted(timeline, key=lambda event: event[0]):
        running += change.get(action, 0) * size
        peak = max(peak, running)
    return peak
