"""Does the allocator setting pay? Real training runs, interleaved, with and without it.

    python benchmarks/allocator.py                      # 300 default glyph steps, 2 rounds
    python benchmarks/allocator.py --steps 100 --rounds 1 -- model.backbone_autocast=null

Each round runs `scripts/train.py` once per variant, in turn (so load from elsewhere hits them
alike), with validation and test off:
- `mallopt`: what every entry point does (training/allocator.py),
- `default`: LEO_ALLOCATOR=default, glibc's own dynamic thresholds,
- `env`: the default plus glibc's MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ environment
  variables as first measured (glibc refuses an mmap threshold above 32 MiB, so only their
  trim threshold takes effect).
Per run: fit seconds and ms per step (results.json), wall seconds and the minor page faults
of the whole process. Prints JSON; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, progress

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "mallopt": {},
    "default": {"LEO_ALLOCATOR": "default"},
    "env": {
        "LEO_ALLOCATOR": "default",
        "MALLOC_MMAP_THRESHOLD_": "1073741824",
        "MALLOC_TRIM_THRESHOLD_": "4294967296",
    },
}


def run_once(variant: str, steps: int, overrides: list[str], data_dir: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"allocator-{variant}-"))
    env = dict(os.environ, **VARIANTS[variant], LEO_DATA_DIR=str(data_dir))
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0",
        "test=false",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={out}",
        *overrides,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return {
        "wall_seconds": wall,
        "fit_seconds": results["fit_seconds"],
        "ms_per_step": 1000 * results["fit_seconds"] / results["meta_train_steps"],
        "minor_page_faults": after.ru_minflt - before.ru_minflt,
        "allocator": results.get("allocator"),
        "precision": (results.get("backbone_precision") or {}).get("name"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="meta-training steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("overrides", nargs="*", help="train.py overrides for every run")
    args = parser.parse_args()
    variants = args.variants.split(",")
    data_dir = Path(tempfile.mkdtemp(prefix="allocator-data-"))
    run_once(variants[0], 1, args.overrides, data_dir)  # renders the glyphs once, untimed
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else variants[::-1]  # both orders
        for variant in order:
            runs[variant].append(run_once(variant, args.steps, args.overrides, data_dir))
            progress(f"round {round_} {variant}: {runs[variant][-1]['ms_per_step']:.1f} ms/step")
    summary = {
        variant: {
            "ms_per_step_median": statistics.median(r["ms_per_step"] for r in rs),
            "fit_seconds": [round(r["fit_seconds"], 2) for r in rs],
            "minor_page_faults": [r["minor_page_faults"] for r in rs],
        }
        for variant, rs in runs.items()
    }
    print(
        json.dumps(
            {
                "machine": machine(),
                "steps": args.steps,
                "overrides": args.overrides,
                "summary": summary,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
