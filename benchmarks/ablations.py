"""Ablations of the optional switches of issue #16: today's LEO and each switch alone.

    python benchmarks/ablations.py --experiment glyphs_5w1s --seeds 0,1,2 --max-steps 3000
    python benchmarks/ablations.py --experiment omniglot_minimal_quick --n-way 20 \
        --budget 00:00:05:00
    python benchmarks/ablations.py --debug-fast --seeds 0     # a smoke run, seconds per variant

Every variant is the same experiment (the same fixed validation and test episodes, the same
seeds) with one switch changed, run as one `scripts/train.py -m` multirun that sweeps the seeds,
into <out>/<variant>/<job>. The jobs are then read with leo_lightning.jobs.compare: the table
goes to stderr and <out>/compare.md (with compare.png). Prints JSON on stdout: the machine, the
commands and their exit codes, one object per job with what compare.md shows, and per variant
the mean and standard deviation of the test accuracy over its seeds. A variant that fails is
reported (exit code, failed jobs) and the others still run. Extra arguments after the options
are overrides for every job (e.g. `model.latent_dim=32`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, progress

from leo_lightning.jobs.compare import (
    JobResult,
    label_jobs,
    markdown_table,
    notes,
    plot,
    read_multirun,
)

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {  # name: the overrides that make it (leo: none, the paper's model)
    "leo": [],
    "relation_attention": ["model.relation=attention"],
    "relation_rounds": ["model.relation_rounds=2"],
    "per_step_rates": ["model.per_step_rates=true"],
    "decoder_task_conditioned": ["model.decoder=task_conditioned"],
    "decoder_mixture": ["model.decoder=mixture"],
}
# --debug-fast: debug=fast shrunk further (tiny Conv4 and code, 2 steps, 2 test episodes), for
# checking that the bench runs end to end; its accuracies mean nothing.
DEBUG_FAST = [
    "debug=fast",
    "model.latent_dim=8",
    "model.backbone.channels=8",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "data.val_episodes=2",
    "data.test_episodes=2",
    "data.n_query=2",
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
]


def experiments() -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


def shared_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides of every job: experiment, ways, schedule, seeds, the user's extras."""
    overrides = [f"experiment={args.experiment}"]
    if args.n_way is not None:
        overrides.append(f"data.n_way={args.n_way}")
    if args.debug_fast:
        overrides += DEBUG_FAST
    if args.max_steps is not None:
        overrides.append(f"trainer.max_steps={args.max_steps}")
    elif args.budget is not None:
        overrides.append("trainer.max_steps=-1")  # the wall-clock budget alone stops training
    if args.budget is not None:
        overrides.append(f"trainer.max_time={args.budget}")
    if args.overwrite:
        overrides.append("overwrite=true")
    return [*overrides, f"seed={args.seeds}", *args.overrides]


def run(command: list[str]) -> int:
    """The command's exit code; its output goes to stderr, so stdout holds the JSON alone."""
    progress(" ".join(command))
    return subprocess.run(command, cwd=ROOT, stdout=sys.stderr).returncode


def read_variant(out: Path, variant: str) -> list[JobResult]:
    """The jobs of one variant's multirun, named <variant>/<job number>; none if it did not
    get as far as creating them."""
    try:
        jobs = read_multirun(out / variant)
    except FileNotFoundError:
        return []
    for job in jobs:
        job.job = f"{variant}/{job.job}"
    return jobs


def summary(jobs: list[JobResult]) -> dict:
    """One variant over its seeds: the test accuracy's mean and sample standard deviation (the
    seed spread), the mean of the per-run 95% CIs over episodes (the episode noise), and the
    mean fitting time and adaptation time per task."""
    tested = [job for job in jobs if job.tested]

    def mean(key: str) -> float | None:
        values = [job.get(key) for job in tested if job.get(key) is not None]
        return statistics.fmean(values) if values else None

    accuracies = [job.get("test/acc") for job in tested]
    return {
        "jobs": len(jobs),
        "tested": len(tested),
        "failed": sum(job.failed for job in jobs),
        "test_acc_mean": mean("test/acc"),
        "test_acc_std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        "test_acc_ci95_mean": mean("test/acc_ci95"),
        "fit_seconds_mean": mean("fit_seconds"),
        "adapt_ms_per_task_mean": mean("test/adapt_ms_per_task"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="glyphs_5w1s", choices=experiments())
    parser.add_argument(
        "--n-way", type=int, default=None, help="data.n_way (default: the experiment's)"
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, swept per variant")
    parser.add_argument("--max-steps", type=int, default=None, help="trainer.max_steps per job")
    parser.add_argument("--budget", default=None, help="trainer.max_time per job, DD:HH:MM:SS")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--debug-fast", action="store_true", help="a smoke run of seconds per job")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a previous bench in --out"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default outputs/bench/ablations-<experiment>"
    )
    parser.add_argument("overrides", nargs="*", help="extra overrides for every job")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(
            f"--variants: unknown {', '.join(unknown)} (choose from {', '.join(VARIANTS)})"
        )
    if not all(seed.strip().lstrip("-").isdigit() for seed in args.seeds.split(",")):
        parser.error(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2")
    name = args.experiment + (f"-{args.n_way}w" if args.n_way else "")
    out = (args.out or ROOT / "outputs" / "bench" / f"ablations-{name}").resolve()

    shared = shared_overrides(args)
    commands, jobs = {}, []
    for variant in variants:
        command = [sys.executable, "scripts/train.py", "-m", *shared, *VARIANTS[variant]]
        command.append(f"hydra.sweep.dir={out / variant}")
        commands[variant] = {"command": " ".join(command[1:]), "returncode": run(command)}
        jobs += read_variant(out, variant)

    label_jobs(jobs)
    for job in jobs:  # the variant first; `leo` alone has no override of its own to show
        variant = job.job.split("/")[0]
        job.label = variant if job.label == f"job {job.job}" else f"{variant}: {job.label}"
    table = markdown_table(jobs) + "\n" + notes(jobs) if jobs else "no job ran\n"
    (out / "compare.md").parent.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(f"# Ablations of the #16 switches, {name}\n\n{table}")
    if jobs:
        plot(jobs, out / "compare.png")
    print(table, file=sys.stderr)
    by_variant = {
        variant: {
            "overrides": VARIANTS[variant],
            **commands[variant],
            **summary([j for j in jobs if j.job.startswith(f"{variant}/")]),
        }
        for variant in variants
    }
    rows = [{"job": j.job, "label": j.label, "strategy": j.strategy, **j.results} for j in jobs]
    report = {
        "machine": machine(),
        "experiment": args.experiment,
        "n_way": args.n_way,
        "seeds": args.seeds,
        "max_steps": args.max_steps,
        "budget": args.budget,
        "debug_fast": args.debug_fast,
        "out": str(out),
        "variants": by_variant,
        "jobs": rows,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
