"""Side-by-side comparison of the jobs of a multirun: a Markdown table and a plot.

Every job directory of the multirun is listed: jobs without a results.json are reported as
failed, never dropped, so a comparison cannot silently lose its worst entries.
"""

from __future__ import annotations

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

    @property
    def failed(self) -> bool:
        return self.acc is None


def read_job(job_dir: Path) -> JobResult:
    config_file = job_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    model = config.get("model", {})
    target = config.get("strategy", {}).get("_target_", "?")
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    result = JobResult(
        job=job_dir.name,
        overrides=" ".join(o for o in overrides or [] if "progress_bar" not in o),
        strategy=target.rsplit(".", 1)[-1],
        inner_steps=model.get("inner_steps"),
        finetune_steps=model.get("finetune_steps"),
    )
    results_file = job_dir / "results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        if "test/acc" in results:
            result.strategy = results.get("strategy", result.strategy)
            result.acc = results["test/acc"]
            result.ci95 = results["test/acc_ci95"]
            result.adapt_ms = results.get("test/adapt_ms_per_task")
            result.fit_seconds = results.get("fit_seconds")
            result.episodes = int(results.get("test/episodes", 0))
    return result


def read_multirun(multirun_dir: Path) -> list[JobResult]:
    """One JobResult per job directory (a directory holding .hydra/), in job order."""
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
            cells = ["failed (no results.json)", "", ""]
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


def main(argv: list[str] | None = None) -> None:
    """`leo-compare <multirun directory>` (and scripts/compare.py): writes compare.md and
    compare.png into that directory and prints the table."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        program = Path(sys.argv[0]).name
        sys.exit(f"usage: {program} <multirun directory>, e.g. outputs/multiruns/<date>/<time>")
    print(compare(Path(args[0])))
