"""The fair bench: every strategy on the same fixed episodes and the same wall-clock budget.

    python benchmarks/strategy_table.py glyphs_5w1s --budget 00:00:03:00
    python benchmarks/strategy_table.py omniglot_5w1s --budget 00:00:03:00
    python benchmarks/strategy_table.py omniglot_20w1s --budget 00:00:05:00
    python benchmarks/strategy_table.py omniglot_5w1s --seeds 0,1,2

Runs one multirun of the meta-learned strategies, each stopped by `trainer.max_time` (validation
included, so a strategy pays for its own model selection), then `per_task` (nothing to
meta-train; its 100 Adam steps per task make a test episode cost seconds, so it is tested on the
first `--per-task-episodes` of the same fixed test episodes: episode i is the same whatever the
count) as a multirun of its own, in <out>_per_task. Then `scripts/compare.py <out>
<out>_per_task`. Prints JSON on stdout: the machine, the commands, and one object per job with
what compare.md shows, and with `--seeds` each strategy's test accuracy per seed, mean and sd.
`--skip-sweep` reuses a finished multirun of the meta-learned strategies. per_task runs once
whatever the seeds: it meta-learns nothing, and its per-task initialisations come from its own
`strategy.seed` and the episode, not from the run's seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, progress

from leo_lightning.jobs.compare import compare, read_multiruns

ROOT = Path(__file__).resolve().parent.parent
TABLES = {  # name: the overrides that choose its data
    "glyphs_5w1s": ["experiment=glyphs_5w1s"],
    "omniglot_5w1s": ["experiment=omniglot_minimal_quick"],
    "omniglot_20w1s": ["experiment=omniglot_minimal_quick", "data.n_way=20"],
}
META_LEARNED = "universal,amortized,amortized_pure,maml,fomaml,meta_sgd,protonet"
# Validation every 50 steps on 100 fixed episodes: often enough that a slow strategy (MAML's
# second-order step costs ~15x LEO's) is still validated several times within its budget.
SCHEDULE = [
    "trainer.max_steps=-1",
    "trainer.val_check_interval=50",
    "data.val_episodes=100",
]


def run(command: list[str]) -> None:
    progress(" ".join(command))
    subprocess.run(command, cwd=ROOT, check=True, stdout=sys.stderr)  # stdout: the JSON alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--budget", default="00:00:03:00", help="trainer.max_time per strategy")
    parser.add_argument(
        "--test-episodes", type=int, default=None, help="the first N fixed test episodes"
    )
    parser.add_argument("--per-task-episodes", type=int, default=200)
    parser.add_argument(
        "--seeds", default=None, help="training seeds of the meta-learned strategies, e.g. 0,1,2"
    )
    parser.add_argument("--skip-sweep", action="store_true", help="it already ran in --out")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/bench/<table>")
    args = parser.parse_args()
    out = (args.out or ROOT / "outputs" / "bench" / args.table).resolve()
    per_task_out = out.with_name(out.name + "_per_task")
    train = [sys.executable, "scripts/train.py", "-m", *TABLES[args.table]]
    test_episodes = [f"data.test_episodes={args.test_episodes}"] if args.test_episodes else []
    # per_task's episodes are a prefix of the others': never more than they had.
    per_task_episodes = min(args.per_task_episodes, args.test_episodes or args.per_task_episodes)
    commands = [
        train
        + [
            *test_episodes,
            f"strategy={META_LEARNED}",
            *([f"seed={args.seeds}"] if args.seeds else []),
            *SCHEDULE,
            f"trainer.max_time={args.budget}",
            f"hydra.sweep.dir={out}",
        ],
        train
        + [
            "strategy=per_task",
            f"data.test_episodes={per_task_episodes}",
            f"hydra.sweep.dir={per_task_out}",
        ],
    ]
    for command in commands[1:] if args.skip_sweep else commands:
        run(command)
    print(compare(out, per_task_out), file=sys.stderr)
    rows = [
        {
            "job": r.job,
            "label": r.label,
            "strategy": r.strategy,
            "option": r.overrides.get("strategy", r.strategy),  # fomaml and maml: one class
            **r.results,
        }
        for r in read_multiruns([out, per_task_out])
    ]
    print(
        json.dumps(
            {
                "machine": machine(),
                "table": args.table,
                "budget": args.budget,
                "commands": [" ".join(c[1:]) for c in commands],
                "jobs": rows,
                "by_strategy": by_strategy(rows),
            },
            indent=1,
        )
    )


def by_strategy(rows: list[dict]) -> dict[str, dict]:
    """Each strategy's test accuracy (%) over its jobs (one per seed): per job, mean, sd."""
    grouped: dict[str, list[float]] = {}
    for row in rows:
        if "test/acc" in row:
            grouped.setdefault(row["option"], []).append(100 * row["test/acc"])
    return {
        name: {
            "test_acc": [round(a, 2) for a in accs],
            "mean": round(statistics.fmean(accs), 2),
            "sd": round(statistics.stdev(accs), 2) if len(accs) > 1 else None,
        }
        for name, accs in grouped.items()
    }


if __name__ == "__main__":
    main()
