"""Side-by-side comparison of the jobs of a multirun (or of an Optuna search): a table and a plot.

Every job directory is listed: a job without results.json is reported as failed, never dropped,
so a comparison cannot silently lose its worst entries; a job that ran without a test (an Optuna
trial, `test=false`) is "not tested" and shows its best validation accuracy. Each row is named
by the overrides that differ between the jobs (read from each job's .hydra/overrides.yaml), so a
sweep over any key, e.g. `model.latent_dim=32,64,128`, gives distinct labels. Several multirun
directories make one table (a strategy that needs other settings, such as per_task's fewer test
episodes, runs as its own multirun); their jobs are then named <directory>/<job>.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from leo_lightning.strategies.catalog import built_in


@dataclass
class JobResult:
    job: str
    overrides: dict[str, str]  # key -> value as written on the command line
    strategy: str
    inner_steps: int | None
    finetune_steps: int | None
    label: str = ""  # the overrides that differ between the compared jobs
    results: dict = field(default_factory=dict)  # results.json; empty if there is none

    @property
    def failed(self) -> bool:
        return not self.results

    @property
    def tested(self) -> bool:
        return "test/acc" in self.results

    def get(self, key: str):
        return self.results.get(key)


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """`key=value` -> {key: value}; a deletion `~key` -> {~key: ""}; Hydra's own keys dropped."""
    parsed = {}
    for line in lines:
        key, _, value = line.partition("=")
        if not key.lstrip("+~").startswith("hydra."):
            parsed[key] = value
    return parsed


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


def _read_results(path: Path) -> dict:
    """The job's results.json; empty if it has none (the job failed). A job that did not test
    (test=false, e.g. an Optuna trial) has results without 'test/acc'."""
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CompareError(f"{path}: not valid JSON, truncated or edited? ({error})") from error
    if not isinstance(results, dict):
        raise CompareError(f"{path}: expected a JSON object of results, found {results!r:.60}")
    if "test/acc" not in results:
        return results
    missing = [key for key in TEST_KEYS if key not in results]
    if missing:
        raise CompareError(f"{path}: has 'test/acc' but no {', '.join(map(repr, missing))}")
    return results


def _inner_steps(strategy: dict, model: dict) -> int | None:
    """A job's adaptation steps: a strategy's own count where it has one (MAML's family:
    strategy.sgd_steps, per_task: strategy.adam_steps; the keys the built-in specs moved
    model.inner_steps to, whose 0.2.0 jobs kept them in model), else LEO's model.inner_steps."""
    own = [
        moved.new.removeprefix("strategy.")
        for cls in built_in()
        for moved in cls.spec.moved
        if moved.old == "model.inner_steps"
    ]
    return next((strategy[key] for key in own if key in strategy), model.get("inner_steps"))


def read_job(job_dir: Path) -> JobResult:
    config = _read_yaml(job_dir / ".hydra" / "config.yaml", {}) or {}
    model = config.get("model", {})
    target = config.get("strategy", {}).get("_target_", "?")
    result = JobResult(
        job=job_dir.name,
        overrides=parse_overrides(_read_yaml(job_dir / ".hydra" / "overrides.yaml", []) or []),
        strategy=target.rsplit(".", 1)[-1],
        inner_steps=_inner_steps(config.get("strategy", {}), model),
        finetune_steps=model.get("finetune_steps"),
    )
    result.results = _read_results(job_dir / "results.json")
    result.strategy = result.results.get("strategy", result.strategy)
    return result


def label_jobs(results: list[JobResult]) -> None:
    """Label each job with the overrides whose value is not the same in every job."""
    keys = list(dict.fromkeys(k for r in results for k in r.overrides))
    varying = [k for k in keys if len({r.overrides.get(k) for r in results}) > 1]
    for r in results:
        shown = [_override_text(k, r.overrides[k]) for k in varying if k in r.overrides]
        r.label = " ".join(shown) or f"job {r.job}"


def _override_text(key: str, value: str) -> str:
    return key if key.startswith("~") else f"{key}={value}"


def common_overrides(results: list[JobResult]) -> list[str]:
    """The overrides every job shares (shown once, above the table)."""
    if not results:
        return []
    first = results[0].overrides
    return [
        _override_text(k, v)
        for k, v in first.items()
        if all(r.overrides.get(k, None) == v and k in r.overrides for r in results)
    ]


def read_multiruns(multirun_dirs: list[Path]) -> list[JobResult]:
    """The jobs of every directory, in the order given, labelled together: with more than one
    directory a job is named <directory>/<job>."""
    results = []
    for multirun_dir in multirun_dirs:
        jobs = read_multirun(multirun_dir, label=False)
        for r in jobs if len(multirun_dirs) > 1 else ():
            r.job = f"{multirun_dir.name}/{r.job}"
        results += jobs
    label_jobs(results)
    return results


def read_multirun(multirun_dir: Path, label: bool = True) -> list[JobResult]:
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
    results = [read_job(p) for p in sorted(jobs, key=lambda p: (len(p.name), p.name))]
    if label:
        label_jobs(results)
    return results


COLUMNS = (
    "job",
    "overrides",
    "strategy",
    "inner + fine-tune steps",
    "test accuracy (95% CI)",
    "best val acc",
    "adapt ms/task",
    "meta-train s",
    "meta-steps",
    "peak MiB/step",
    "adapted/task",
    "BatchNorm at test",
    "adaptation precision",
)


def _number(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def row(r: JobResult) -> list[str]:
    cells = [r.job, f"`{r.label}`", r.strategy, f"{r.inner_steps} + {r.finetune_steps}"]
    if r.failed:
        return cells + ["failed (no results.json)"] + [""] * (len(COLUMNS) - len(cells) - 1)
    if r.tested:
        accuracy = f"{100 * r.get('test/acc'):.2f} ± {100 * r.get('test/acc_ci95'):.2f} %"
        accuracy += f" ({int(r.get('test/episodes') or 0)} ep.)"
    else:
        accuracy = "not tested"
    best_val = r.get("best_val_acc")
    return cells + [
        accuracy,
        "" if best_val is None else f"{100 * best_val:.2f} %",
        _number(r.get("test/adapt_ms_per_task"), ".1f"),
        _number(r.get("fit_seconds"), ".0f"),
        _number(r.get("meta_train_steps"), "d"),
        _number(r.get("peak_step_memory_mb"), ".1f"),
        _number(r.get("adapted_parameters"), ","),
        r.get("batch_norm") or "",
        r.get("inner_loop_precision") or "",
    ]


def markdown_table(results: list[JobResult]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def notes(results: list[JobResult]) -> str:
    """What the table does not say on each row: the shared overrides and how memory was read."""
    lines = []
    common = common_overrides(results)
    if common:
        lines.append(f"Every job: `{' '.join(common)}`.")
    sources = sorted({r.get("peak_step_memory_source") for r in results if not r.failed} - {None})
    if sources:
        lines.append(
            "peak MiB/step: the working memory of one meta-training step (peak tensor memory "
            f"above that live when it began), measured with {', '.join(sources)}."
        )
    return "\n".join(lines) + ("\n" if lines else "")


def plot(results: list[JobResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in (r for r in results if r.tested and r.get("test/adapt_ms_per_task")):
        ax.errorbar(
            r.get("test/adapt_ms_per_task"),
            100 * r.get("test/acc"),
            yerr=100 * r.get("test/acc_ci95"),
            fmt="o",
            capsize=4,
            label=r.label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("adaptation time per task (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against adaptation time, fixed test episodes")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compare(*multirun_dirs: Path) -> str:
    """The table of the jobs of every directory; compare.md and compare.png go into the first."""
    results = read_multiruns(list(multirun_dirs))
    table = markdown_table(results) + "\n" + notes(results)
    title = ", ".join(str(d) for d in multirun_dirs)
    (multirun_dirs[0] / "compare.md").write_text(f"# Comparison of {title}\n\n{table}")
    plot(results, multirun_dirs[0] / "compare.png")
    return table
