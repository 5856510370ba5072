"""The process's memory allocator, set once at the start of every entry point, so that no step
pays for it.

glibc's malloc serves a large block from a fresh mmap (and unmaps it on free) once the block is
above its mmap threshold, and returns freed heap memory to the system above its trim threshold;
both thresholds move with the allocation history. A training step's activation buffers (tens of
MiB) sit near those thresholds, so a step could fault in 15,000-23,000 fresh pages or none,
depending on what ran before it. Fixing both thresholds (`mallopt`) turns the dynamic behaviour
off: the buffers stay in the heap and are reused from step to step. glibc accepts at most 32 MiB
(half its heap size) as the mmap threshold; the trim threshold has no such limit.

Elsewhere (macOS, musl, Windows) nothing is changed, and the record says so. LEO_ALLOCATOR=default
leaves glibc's own behaviour, for comparisons (benchmarks/throughput.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of freed heap memory for the next step
MMAP_THRESHOLD = 32 << 20  # serve blocks up to 32 MiB from the heap (glibc's largest allowed)
ENV = "LEO_ALLOCATOR"  # "default": leave the allocator as it is

_record: dict[str, Any] | None = None


def configure_allocator() -> dict[str, Any]:
    """Apply the thresholds once per process; what was done (also `allocator_record()`)."""
    global _record
    if _record is not None:
        return _record
    if os.environ.get(ENV, "").lower() == "default":
        _record = {"name": "default", "applied": False, "reason": f"{ENV}=default"}
        return _record
    mallopt = _mallopt()
    if mallopt is None:
        _record = {"name": "default", "applied": False, "reason": "no glibc mallopt here"}
        return _record
    applied = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )
    _record = {
        "name": "glibc mallopt",
        "applied": applied,
        "trim_threshold": TRIM_THRESHOLD,
        "mmap_threshold": MMAP_THRESHOLD,
    }
    if not applied:
        log.warning("the allocator's thresholds could not be set: %s", _record)
    return _record


def allocator_record() -> dict[str, Any]:
    """What configure_allocator did in this process (nothing yet: the allocator's default)."""
    return _record or {"name": "default", "applied": False, "reason": "not configured"}


def _mallopt():
    """glibc's mallopt(int, int) -> int, or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt
