"""scripts/compare.py: every job is listed, failed ones as failed; a table and a plot."""

from __future__ import annotations

import json

import pytest
import yaml

from leo_lightning.cli.compare import compare


def fake_job(root, num, strategy, steps, acc=None):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = {
        "strategy": {"_target_": f"leo_lightning.strategies.{strategy}"},
        "model": {"inner_steps": steps, "finetune_steps": steps},
    }
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"strategy={strategy.lower()}", f"model.inner_steps={steps}"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if acc is not None:
        results = {
            "strategy": strategy,
            "test/acc": acc,
            "test/acc_ci95": 0.01,
            "test/adapt_ms_per_task": 3.0 + steps,
            "fit_seconds": 12.0,
            "test/episodes": 100,
        }
        (job / "results.json").write_text(json.dumps(results))


def test_compare_lists_every_job_and_marks_failed_ones(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    fake_job(tmp_path, 1, "Amortized", 5, acc=0.93)
    fake_job(tmp_path, 2, "PerTask", 100)  # crashed: no results.json
    table = compare(tmp_path)
    assert "90.00 ± 1.00 %" in table and "93.00 ± 1.00 %" in table
    assert "| 2 | `strategy=pertask model.inner_steps=100` | PerTask | 100 | 100 | failed" in table
    assert (tmp_path / "compare.md").read_text().count("\n|") == 5  # header, rule, three jobs
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_compare_rejects_a_directory_without_jobs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no job directories"):
        compare(tmp_path)
