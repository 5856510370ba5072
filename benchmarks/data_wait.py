"""Share of each meta-training step spent waiting for the next batch, in a real Lightning fit.

    python benchmarks/data_wait.py [--steps 80] [--warmup 10] [--repeats 2]
        [--workers 0 1 2] [train.py overrides ...]

Composes the training config exactly as scripts/train.py does (default: glyphs, 5-way 1-shot,
4 tasks per meta-batch, bf16 + channels-last backbone, TensorBoard logger, checkpoint
callbacks), with validation off and one `data.num_workers` value per fit, and runs
`trainer.fit` with Lightning's SimpleProfiler and a callback that stamps every
on_train_batch_start / on_train_batch_end. Per step, after `--warmup` steps:

- data wait: the profiler's `[_TrainingEpochLoop].train_dataloader_next` (the main process
  blocked in the DataLoader's `next`: the whole episode sampling with 0 workers, only the
  wait for a worker's finished batch otherwise),
- training batch: on_train_batch_start -> on_train_batch_end (forward, inner loops, backward,
  clipping, Adam, logging calls),
- step wall: on_train_batch_start -> the next on_train_batch_start.

Fits with different worker counts alternate (`--repeats` rounds), so load from other
processes hits them alike. Also times the bare training DataLoader (no model) per meta-batch.
Prints JSON and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
from common import machine
from hydra.utils import instantiate
from lightning.pytorch.profilers import SimpleProfiler

from leo_lightning.config.compose import compose_config
from leo_lightning.jobs.common import instantiate_each

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

NEXT = "[_TrainingEpochLoop].train_dataloader_next"


class StepClock(L.Callback):
    """Wall-clock stamps of every training batch's start and end."""

    def __init__(self):
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def run_config(overrides: list[str], run_dir: str):
    """The training config as leo-train composes it (with its hydra node)."""
    return compose_config("train", [*overrides, f"paths.run_dir={run_dir}"])


def fit_once(overrides: list[str], workers: int, steps: int, warmup: int) -> dict:
    run_dir = tempfile.mkdtemp(prefix="data_wait-")
    cfg = run_config(
        [
            *overrides,
            f"data.num_workers={workers}",
            f"trainer.max_steps={steps}",
            "trainer.limit_val_batches=0",
            "~callbacks.progress_bar",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
        run_dir,
    )
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False)
    clock, profiler = StepClock(), SimpleProfiler(dirpath=run_dir, filename="profile")
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*instantiate_each(cfg.get("callbacks")), clock],
        logger=instantiate_each(cfg.get("logger")) or False,
        profiler=profiler,
    )
    trainer.fit(module, datamodule=datamodule)
    nexts = profiler.recorded_durations[NEXT]
    starts, ends = clock.starts, clock.ends
    # Lightning's fetcher works one batch ahead: the `next` just before step j hands over the
    # batch fetched earlier and fetches batch j + 1. Whether the very first (prefetching) fetch
    # was profiled shows in the count; `offset` aligns each step with the fetch just before it.
    offset = len(nexts) - len(starts)
    if offset not in (0, 1):
        raise RuntimeError(f"{len(nexts)} profiled fetches for {len(starts)} steps")
    rows = []
    for i in range(warmup, len(starts) - 1):  # the interval start[i] -> start[i + 1]
        rows.append(
            {
                "wall": starts[i + 1] - starts[i],
                "batch": ends[i] - starts[i],
                "data": nexts[i + 1 + offset],
            }
        )
    wall = sum(r["wall"] for r in rows)
    data = sum(r["data"] for r in rows)
    batch = sum(r["batch"] for r in rows)
    return {
        "workers": workers,
        "steps_measured": len(rows),
        "step_wall_ms_median": 1000 * statistics.median(r["wall"] for r in rows),
        "training_batch_ms_median": 1000 * statistics.median(r["batch"] for r in rows),
        "data_wait_ms_median": 1000 * statistics.median(r["data"] for r in rows),
        "data_wait_ms_mean": 1000 * data / len(rows),
        "data_wait_share": data / wall,
        "training_batch_share": batch / wall,
        "other_share": 1 - (data + batch) / wall,
        "backbone_precision": module.net.precision.name,
    }


def bare_loader_ms(overrides: list[str], batches: int) -> float:
    """Median ms per meta-batch of the training DataLoader alone (0 workers, no model)."""
    cfg = run_config([*overrides, "data.num_workers=0"], tempfile.mkdtemp())
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    iterator = iter(datamodule.train_dataloader())
    next(iterator)
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args, overrides = parser.parse_known_args()
    fits = []
    for repeat in range(args.repeats):
        for workers in args.workers:  # interleaved: one fit per worker count per round
            row = fit_once(overrides, workers, args.steps, args.warmup)
            fits.append({"repeat": repeat, **row})
            print(
                f"  workers={workers}: data wait {100 * row['data_wait_share']:.1f}% of "
                f"{row['step_wall_ms_median']:.0f} ms",
                file=sys.stderr,
            )
    summary = {}
    for workers in args.workers:
        rows = [f for f in fits if f["workers"] == workers]
        summary[workers] = {
            key: statistics.median(r[key] for r in rows)
            for key in rows[0]
            if key not in ("workers", "repeat", "steps_measured", "backbone_precision")
        }
    result = {
        "machine": machine(),
        "backbone_precision": fits[0]["backbone_precision"],
        "overrides": overrides,
        "steps": args.steps,
        "warmup": args.warmup,
        "bare_loader_ms_per_meta_batch": bare_loader_ms(overrides, 50),
        "fits": fits,
        "median_over_repeats": summary,
    }
    print(json.dumps(result, indent=2, default=float))
    print(
        "\n| num_workers | step wall ms | training batch ms | data wait ms | data wait share |",
        file=sys.stderr,
    )
    print("|---|---|---|---|---|", file=sys.stderr)
    for workers, s in summary.items():
        print(
            f"| {workers} | {s['step_wall_ms_median']:.1f} | {s['training_batch_ms_median']:.1f} "
            f"| {s['data_wait_ms_median']:.2f} | {100 * s['data_wait_share']:.1f} % |",
            file=sys.stderr,
        )
    print(
        f"bare training DataLoader: {result['bare_loader_ms_per_meta_batch']:.2f} ms per "
        "meta-batch",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
