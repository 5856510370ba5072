"""A run prints what its user needs: where it lives, the precision chosen, progress, the result.
Third-party lines that look like failures or advertise are silenced here, each by its message
and its source, never by level or by whole library, so anything else still shows.

- Lightning's advertisements of its cloud logger and model registry (log records of its
  rank-zero logger),
- the deprecation `isinstance(treespec, LeafSpec)` that Lightning's own code triggers in torch
  2.14 (a warning attributed to lightning.pytorch.utilities._pytree).

(The profiler's native trace and "gpuGetDeviceCount failed" lines: training/memory.py.)
"""

from __future__ import annotations

import logging
import warnings

# (logger, the start of the message) of log records to drop
SILENCED_RECORDS = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud logging"),
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip: For seamless cloud uploads"),
)
# (message regex, module regex) of warnings to ignore
SILENCED_WARNINGS = (
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        r"lightning\.pytorch\.utilities\._pytree",
    ),
)


class _Dropping(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_third_party() -> None:
    """Install the filters (once per process; a second call adds nothing)."""
    by_logger: dict[str, tuple[str, ...]] = {}
    for name, start in SILENCED_RECORDS:
        by_logger[name] = (*by_logger.get(name, ()), start)
    for name, starts in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Dropping) for f in logger.filters):
            logger.addFilter(_Dropping(starts))
    for message, module in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
