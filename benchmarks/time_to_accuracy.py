"""Wall time until validation accuracy first reaches a target, for any training config.

    python benchmarks/time_to_accuracy.py [--target 0.95] [--every 25] [train.py overrides ...]

Runs scripts/train.py with validation every `--every` steps and Lightning's EarlyStopping at the
target, then reads the val/acc events (with their wall times) from the run's TensorBoard files.
Prints JSON. The clock starts when the logger is created (after the dataset is prepared) and
includes the validation passes themselves, which are listed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--every", type=int, default=25, help="validate every this many steps")
    parser.add_argument("--val-episodes", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=3000)
    args, overrides = parser.parse_known_args()
    output_dir = Path(tempfile.mkdtemp(prefix="time_to_accuracy-"))
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *overrides,
        f"trainer.max_steps={args.max_steps}",
        f"trainer.val_check_interval={args.every}",
        f"data.val_episodes={args.val_episodes}",
        "test=false",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
        "+callbacks.stop_at_target._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.stop_at_target.monitor=val/acc",
        "+callbacks.stop_at_target.mode=max",
        f"+callbacks.stop_at_target.stopping_threshold={args.target}",
        f"+callbacks.stop_at_target.patience={args.max_steps}",
    ]
    env = dict(os.environ, LEO_OUTPUT_DIR=str(output_dir))
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    events = next(output_dir.glob("runs/*/*/tensorboard/*/events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    start = accumulator.FirstEventTimestamp()
    curve = [(e.step, e.wall_time - start, e.value) for e in accumulator.Scalars("val/acc")]
    reached = next(((s, t, v) for s, t, v in curve if v >= args.target), None)
    (results_json,) = output_dir.glob("runs/*/*/results.json")
    result = {
        "machine": machine(),
        "backbone_precision": json.loads(results_json.read_text()).get("backbone_precision"),
        "overrides": overrides,
        "target_val_acc": args.target,
        "val_every_steps": args.every,
        "val_episodes": args.val_episodes,
        "reached": reached is not None,
        "step": reached[0] if reached else None,
        "minutes": round(reached[1] / 60, 2) if reached else None,
        "curve": [
            {"step": s, "minutes": round(t / 60, 3), "val_acc": round(v, 4)} for s, t, v in curve
        ],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
