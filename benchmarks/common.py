"""Helpers shared by the benchmark scripts: timing, memory, machine description."""

from __future__ import annotations

import datetime
import os
import platform
import resource
import sys
import time
from collections.abc import Callable

import lightning
import torch

from leo_lightning.data.episode import Episode
from leo_lightning.models.precision import cpu_info

_STARTED = time.perf_counter()


def machine() -> dict:
    """Every benchmark's JSON says where it ran: the CPU kind and whether it computes bf16
    natively matter as much as the numbers (bf16 is ~7x slower than fp32 where it is emulated)."""
    return {
        "date": datetime.date.today().isoformat(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        **cpu_info(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
    }


def progress(message: str) -> None:
    """A line on stderr as each measurement ends, so no benchmark runs minutes in silence."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_call(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> float:
    """Median seconds per call over `repeats` timed calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return median(times)


def interleaved(
    steps: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Each variant's median seconds per call and minor page faults per call, measured in
    rounds of one call of every variant (the order alternating from round to round) after
    `warmup` untimed calls of each: no variant is measured cold, or after the others only, or
    while the allocator state of another one's history favours it."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    faults: dict[str, list[int]] = {name: [] for name in steps}
    names = list(steps)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            synchronize(device)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            steps[name]()
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {
        name: {"seconds": median(seconds[name]), "minor_faults": median(faults[name])}
        for name in names
    }


def resident_mb() -> float:
    """The process's resident set size now (Linux; its peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(values: list[float]) -> float:
    """The middle value (the upper of the two middle ones for an even count)."""
    return sorted(values)[len(values) // 2]


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated device memory on CUDA; peak resident set size of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def random_episode(
    b: int, n: int, k: int, q: int, size: int, device: torch.device, seed: int = 0
) -> Episode:
    """uint8 images and permuted labels, the same shapes and dtypes the DataModule yields."""
    g = torch.Generator().manual_seed(seed)

    def images(m: int) -> torch.Tensor:
        return torch.randint(0, 256, (b, m, 1, size, size), generator=g, dtype=torch.uint8)

    def labels(r: int) -> torch.Tensor:
        return torch.stack([torch.randperm(n, generator=g).repeat_interleave(r) for _ in range(b)])

    return Episode(images(n * k), labels(k), images(n * q), labels(q)).to(device)
