"""Side-by-side comparison of the jobs of a multirun: a Markdown table and a plot.

Every job directory of the multirun is listed: jobs without a results.json are reported as
failed, never dropped, so a comparison cannot silently lose its worst entries.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class JobResult:
    job: str
    overrides: str
    strategy: str
    inner_steps: int | None
    finetune_steps: int | None
    acc: float | None = None
    ci95: float | None = None
    adapt_ms: float | None = None
    fit_seconds: float | None = None
    episodes: int | None = None
    missing: str = "no results.json"  # why a failed job has no accuracy

    @property
    def failed(self) -> bool:
        return self.acc is None


class CompareError(ValueError):
    """A job's files cannot be read; the message names the file and what is wrong."""


# results.json keys the table needs from a job that ran its test (test=false writes neither).
TEST_KEYS = ("test/acc", "test/acc_ci95")


def _read_yaml(path: Path, default):
    if not path.is_file():
        return default
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CompareError(f"{path}: not valid YAML ({error})") from error


def _read_results(path: Path) -> dict | None:
    """The job's results.json, or None if it has none (the job failed or did not test)."""
    if not path.is_file():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CompareError(f"{path}: not valid JSON, truncated or edited? ({error})") from error
    if not isinstance(results, dict):
        raise CompareError(f"{path}: expected a JSON object of results, found {results!r:.60}")
    if "test/acc" not in results:
        return None
    missing = [key for key in TEST_KEYS if key not in results]
    if missing:
        raise CompareError(f"{path}: has 'test/acc' but no {', '.join(map(repr, missing))}")
    return results


def read_job(job_dir: Path) -> JobResult:
    config = _read_yaml(job_dir / ".hydra" / "config.yaml", {}) or {}
    model = config.get("model", {})
    target = config.get("strategy", {}).get("_target_", "?")
    overrides = _read_yaml(job_dir / ".hydra" / "overrides.yaml", []) or []
    result = JobResult(
        job=job_dir.name,
        overrides=" ".join(o for o in overrides if "progress_bar" not in o),
        strategy=target.rsplit(".", 1)[-1],
        inner_steps=model.get("inner_steps"),
        finetune_steps=model.get("finetune_steps"),
    )
    results = _read_results(job_dir / "results.json")
    if results is None and (job_dir / "results.json").is_file():
        result.missing = "no test results in results.json"
    if results is not None:
        result.strategy = results.get("strategy", result.strategy)
        result.acc = results["test/acc"]
        result.ci95 = results["test/acc_ci95"]
        result.adapt_ms = results.get("test/adapt_ms_per_task")
        result.fit_seconds = results.get("fit_seconds")
        result.episodes = int(results.get("test/episodes", 0))
    return result


def read_multirun(multirun_dir: Path) -> list[JobResult]:
    """One JobResult per job directory (a directory holding .hydra/), in job order."""
    if not multirun_dir.is_dir():
        what = "not a directory" if multirun_dir.exists() else "no such directory"
        raise FileNotFoundError(
            f"{multirun_dir}: {what}; pass the directory of a `scripts/train.py -m ...` run"
        )
    jobs = [p for p in multirun_dir.iterdir() if (p / ".hydra").is_dir()]
    if not jobs:
        raise FileNotFoundError(
            f"{multirun_dir} holds no job directories (subfolders with .hydra/); pass the "
            "directory of a `scripts/train.py -m ...` run, e.g. outputs/multiruns/<date>/<time>"
        )
    return [read_job(p) for p in sorted(jobs, key=lambda p: (len(p.name), p.name))]


def markdown_table(results: list[JobResult]) -> str:
    lines = [
        "| job | overrides | strategy | latent steps | fine-tune steps | test accuracy (95% CI) "
        "| adapt ms/task | meta-train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.failed:
            cells = [f"failed ({r.missing})", "", ""]
        else:
            cells = [
                f"{100 * r.acc:.2f} ± {100 * r.ci95:.2f} % ({r.episodes} ep.)",
                f"{r.adapt_ms:.1f}" if r.adapt_ms is not None else "",
                f"{r.fit_seconds:.0f}" if r.fit_seconds is not None else "",
            ]
        lines.append(
            f"| {r.job} | `{r.overrides}` | {r.strategy} | {r.inner_steps} | {r.finetune_steps} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[JobResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in (r for r in results if not r.failed and r.adapt_ms):
        label = f"{r.strategy} ({r.inner_steps}+{r.finetune_steps} steps)"
        ax.errorbar(r.adapt_ms, 100 * r.acc, yerr=100 * r.ci95, fmt="o", capsize=4, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("adaptation time per task (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against adaptation time, fixed test episodes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(multirun_dir: Path) -> str:
    results = read_multirun(multirun_dir)
    table = markdown_table(results)
    (multirun_dir / "compare.md").write_text(f"# Comparison of {multirun_dir}\n\n{table}")
    plot(results, multirun_dir / "compare.png")
    return table


def main(argv: list[str] | None = None) -> int:
    """scripts/compare.py: print the table, or one line saying which file or key is wrong."""
    parser = argparse.ArgumentParser(
        prog="scripts/compare.py",
        description="Compare the jobs of a multirun: writes compare.md and compare.png into "
        "the directory and prints the table.",
    )
    parser.add_argument("multirun_dir", type=Path, help="e.g. outputs/multiruns/<date>/<time>")
    args = parser.parse_args(argv)
    try:
        print(compare(args.multirun_dir))
    except (FileNotFoundError, CompareError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
