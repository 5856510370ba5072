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


# -- before training: will one step fit? ----------------------------------------------------------

# Each inner step through the backbone keeps its activations, their gradients and the graph of
# those gradients for the second-order meta-gradient. With these weights the estimate came within
# a factor of about 3 of the measured peaks (README's strategy table, 5-way Omniglot: amortized
# 50 MiB measured in bf16, maml 303 MiB), above them for LEO and near them for MAML: meant to
# refuse only what clearly cannot fit.
KEPT_PER_BACKBONE_STEP = 3


def activation_bytes_per_example(backbone: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of every leaf module's output in a forward pass of one example: what autograd
    keeps of the backbone per example (fp32)."""
    sizes: list[int] = []
    leaves = [m for m in backbone.modules() if not list(m.children())]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() * 4)) for m in leaves
    ]
    was_training = backbone.training
    try:
        backbone.eval()
        with torch.no_grad():
            backbone(torch.zeros(1, *input_shape))
    finally:
        backbone.train(was_training)
        for hook in hooks:
            hook.remove()
    return sum(sizes)


def estimated_step_bytes(module, n_way: int, k_shot: int, n_query: int, tasks: int) -> dict:
    """A rough upper estimate of one meta-training step's memory, and its parts: the backbone's
    activations for every support and query example of the meta-batch, and, for strategies whose
    inner steps run the backbone again (Strategy.steps_through_backbone), once more per step for
    the support set. LEO's latent steps work on features and add little."""
    per_example = activation_bytes_per_example(module.net.backbone, module.net.input_shape)
    steps = module.strategy.steps_through_backbone()
    examples = tasks * (
        n_way * (k_shot + n_query) + KEPT_PER_BACKBONE_STEP * n_way * k_shot * steps
    )
    total = per_example * examples  # fp32 activations
    return {"bytes": total, "per_example": per_example, "steps_through_backbone": steps}


def available_bytes(device: torch.device) -> int | None:
    """Memory free for the run on `device`: MemAvailable on Linux for the CPU, free GPU memory
    for CUDA; None where it cannot be told (then nothing is refused)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def step_memory_problem(module, data, device: torch.device) -> str | None:
    """The message for a configuration whose estimated step memory exceeds what `device` has,
    naming the keys that drive it; None when it fits or cannot be told."""
    free = available_bytes(device)
    if free is None:
        return None
    estimate = estimated_step_bytes(
        module, data.n_way, data.k_shot, data.n_query, data.meta_batch_size
    )
    if estimate["bytes"] <= free:
        return None
    keys = "data.meta_batch_size, data.n_way, data.image_size"
    if estimate["steps_through_backbone"]:
        keys = f"strategy.sgd_steps={estimate['steps_through_backbone']}, {keys}"
    return (
        f"one meta-training step would need about {estimate['bytes'] / 2**30:.1f} GiB (the "
        f"backbone keeps {estimate['per_example'] / 2**20:.2f} MiB per example, for "
        f"data.meta_batch_size={data.meta_batch_size} tasks"
        + (
            f" and strategy.sgd_steps={estimate['steps_through_backbone']} passes over each "
            "support set"
            if estimate["steps_through_backbone"]
            else ""
        )
        + f"), more than the {free / 2**30:.1f} GiB available on {device}: lower {keys}"
    )
