"""The outer (meta) optimizer's learning-rate schedule: `model.lr_schedule`, `model.warmup_steps`.

- `constant` without warm-up: no scheduler at all, the plain Adam at `model.lr` of before.
- warm-up (either schedule): the first W = `model.warmup_steps` meta-updates use the rates
  model.lr * 1/(W+1), 2/(W+1), ..., W/(W+1) (torch's LinearLR), then model.lr.
- `cosine`: after the warm-up, model.lr * (1 + cos(pi t / T)) / 2 for the t-th update of the
  T = trainer.max_steps - W that remain (torch's CosineAnnealingLR; the last update's rate is
  small but not zero). Its length comes from trainer.max_steps, so that must be bounded.

The scheduler steps once per applied meta-update (LEOModule.meta_update): a skipped update
(non-finite loss or gradient) moves neither the weights nor trainer.global_step, and not the
rate either, so the schedule's position is always global_step and cosine ends at max_steps.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

SCHEDULES = ("constant", "cosine")


def build_scheduler(
    optimizer: Optimizer, schedule: str, warmup_steps: int, max_steps: int
) -> LRScheduler | None:
    """The scheduler of `optimizer`, or None for a constant rate without warm-up.
    `max_steps` is trainer.max_steps (-1: unbounded), read by `cosine` only."""
    if schedule not in SCHEDULES:
        raise ValueError(f"model.lr_schedule={schedule!r}: must be one of {SCHEDULES}")
    if warmup_steps < 0:
        raise ValueError(f"model.warmup_steps={warmup_steps}: must be >= 0")
    warmup = (
        LinearLR(optimizer, start_factor=1 / (warmup_steps + 1), total_iters=warmup_steps)
        if warmup_steps
        else None
    )
    if schedule == "constant":
        return warmup
    if max_steps < 1:
        raise ValueError(
            f"model.lr_schedule=cosine needs a bounded trainer.max_steps (the length of the "
            f"curve), not trainer.max_steps={max_steps}; a trainer.max_time budget alone "
            "cannot tell it: set trainer.max_steps to the steps that fit the budget"
        )
    if warmup_steps >= max_steps:
        raise ValueError(
            f"model.warmup_steps={warmup_steps}: must be < trainer.max_steps={max_steps} "
            "with model.lr_schedule=cosine"
        )
    cosine = CosineAnnealingLR(optimizer, T_max=max_steps - warmup_steps)
    if warmup is None:
        return cosine
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def rebase_scheduler_state(state: dict[str, Any], lrs: list[float], ratio: float) -> None:
    """A saved scheduler state (a SequentialLR's holds its parts' states) moved to the base
    rates `lrs` (one per parameter group): its base rates become them, the rates it last set are
    scaled by `ratio`."""
    if "base_lrs" in state:
        state["base_lrs"] = list(lrs)
    if "_last_lr" in state:
        state["_last_lr"] = [value * ratio for value in state["_last_lr"]]
    for part in state.get("_schedulers", []):
        rebase_scheduler_state(part, lrs, ratio)
