"""scripts/compare.py: every job is listed, failed ones as failed; a table and a plot."""

from __future__ import annotations

import json

import pytest
import yaml

from leo_lightning.jobs.compare import CompareError, compare


def fake_job(root, num, strategy, steps, acc=None, overrides=None, **results_extra):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    config = {
        "strategy": {"_target_": f"leo_lightning.strategies.{strategy}"},
        "model": {"inner_steps": steps, "finetune_steps": steps},
    }
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = overrides or [f"strategy={strategy.lower()}", f"model.inner_steps={steps}"]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results_extra:
        (job / "results.json").write_text(json.dumps({"strategy": strategy, **results_extra}))
    if acc is not None:
        results = {
            "strategy": strategy,
            "test/acc": acc,
            "test/acc_ci95": 0.01,
            "test/adapt_ms_per_task": 3.0 + steps,
            "fit_seconds": 12.0,
            "test/episodes": 100,
            "best_val_acc": acc - 0.01,
            "peak_step_memory_mb": 12.5,
            "peak_step_memory_source": "torch.profiler memory timeline",
            "adapted_parameters": 11525,
            "batch_norm": "running statistics",
            "inner_loop_precision": "fp32",
        }
        (job / "results.json").write_text(json.dumps(results))


def test_compare_lists_every_job_and_marks_failed_ones(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    fake_job(tmp_path, 1, "Amortized", 5, acc=0.93)
    fake_job(tmp_path, 2, "PerTask", 100)  # crashed: no results.json
    table = compare(tmp_path)
    assert "90.00 ± 1.00 %" in table and "93.00 ± 1.00 %" in table
    assert "| 2 | `strategy=pertask model.inner_steps=100` | PerTask | 100 + 100 | failed" in table
    assert (tmp_path / "compare.md").read_text().count("\n|") == 5  # header, rule, three jobs
    row = next(line for line in table.splitlines() if line.startswith("| 0 |"))
    assert row.endswith("| 89.00 % | 3.0 | 12 |  | 12.5 | 11,525 | running statistics | fp32 |")
    assert "measured with torch.profiler memory timeline" in table
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_compare_rejects_a_directory_without_jobs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no job directories"):
        compare(tmp_path)


def run_compare(*args: str):
    import subprocess
    import sys

    from conftest import ROOT

    script = str(ROOT / "scripts" / "compare.py")
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True)


@pytest.mark.slow
def test_the_script_names_a_missing_directory(tmp_path):
    proc = run_compare(str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(
        f"error: {tmp_path / 'nowhere'}: no such directory; pass the directory of a "
        "`scripts/train.py -m ...` run"
    )


@pytest.mark.slow
def test_the_script_names_a_truncated_results_file_without_a_traceback(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    results = tmp_path / "0" / "results.json"
    results.write_text(results.read_text()[:20])
    proc = run_compare(str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"error: {results}: not valid JSON" in proc.stderr


def test_a_results_file_missing_a_key_is_named_with_the_key(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    results = tmp_path / "0" / "results.json"
    payload = json.loads(results.read_text())
    del payload["test/acc_ci95"]
    results.write_text(json.dumps(payload))
    with pytest.raises(
        CompareError, match=r"0/results.json: has 'test/acc' but no 'test/acc_ci95'"
    ):
        compare(tmp_path)


def test_a_job_that_did_not_test_is_listed_as_not_tested_with_its_validation(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    (tmp_path / "1" / ".hydra").mkdir(parents=True)
    (tmp_path / "1" / "results.json").write_text(json.dumps({"best_val_acc": 0.5}))
    row = next(line for line in compare(tmp_path).splitlines() if line.startswith("| 1 |"))
    assert "not tested" in row and "50.00" in row and "failed" not in row


def test_a_sweep_over_any_key_labels_each_job_by_the_keys_that_differ(tmp_path):
    for num, dim in enumerate((32, 64, 128)):
        overrides = [f"model.latent_dim={dim}", "debug=fast", "trainer.max_steps=300"]
        fake_job(tmp_path, num, "Amortized", 5, acc=0.9, overrides=overrides)
    table = compare(tmp_path)
    for num, dim in enumerate((32, 64, 128)):
        assert f"| {num} | `model.latent_dim={dim}` | Amortized |" in table
    assert "Every job: `debug=fast trainer.max_steps=300`." in table


def test_an_optuna_trial_without_a_test_is_not_tested_and_shows_its_best_validation(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 5, overrides=["model.lr=0.001"], best_val_acc=0.8125)
    fake_job(tmp_path, 1, "Amortized", 5, overrides=["model.lr=0.003"], best_val_acc=0.75)
    table = compare(tmp_path)
    assert "| 0 | `model.lr=0.001` | Amortized | 5 + 5 | not tested | 81.25 % |" in table
    assert "failed" not in table


def test_several_multiruns_make_one_table_with_jobs_named_by_their_directory(tmp_path):
    sweep, single = tmp_path / "sweep", tmp_path / "per_task"
    fake_job(sweep, 0, "Amortized", 5, acc=0.9, overrides=["strategy=amortized"])
    fake_job(sweep, 1, "MAML", 5, acc=0.8, overrides=["strategy=maml"])
    fake_job(single, 0, "PerTask", 100, acc=0.7, overrides=["strategy=per_task"])
    table = compare(sweep, single)
    assert "| sweep/0 | `strategy=amortized` |" in table
    assert "| sweep/1 | `strategy=maml` |" in table
    assert "| per_task/0 | `strategy=per_task` |" in table
    assert (sweep / "compare.md").is_file() and not (single / "compare.md").exists()


def test_the_table_shows_how_many_meta_steps_each_job_took_in_its_budget(tmp_path):
    fake_job(tmp_path, 0, "Amortized", 5, acc=0.9)
    results = tmp_path / "0" / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "meta_train_steps": 1399}))
    header, _, row = compare(tmp_path).splitlines()[:3]
    cells = dict(zip(header.split(" | "), row.split(" | ")))
    assert cells["meta-steps"] == "1399"


def test_the_command_says_where_it_wrote_the_table_and_the_plot(tmp_path, capsys):
    from leo_lightning.cli.compare import main

    fake_job(tmp_path, 0, "Amortized", 0, acc=0.9)
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"written to {tmp_path / 'compare.md'} and {tmp_path / 'compare.png'}" in out


@pytest.mark.parametrize(
    ("strategy", "override", "own_steps", "row"),
    [
        ("MAML", "strategy=maml", {"sgd_steps": 3}, "| MAML | 3 + 0 |"),
        ("PerTask", "strategy=per_task", {"adam_steps": 40}, "| PerTask | 40 + 0 |"),
    ],
)
def test_a_strategys_own_step_count_is_its_steps(tmp_path, strategy, override, own_steps, row):
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    config = {
        "strategy": {"_target_": f"leo_lightning.strategies.{strategy}", **own_steps},
        "model": {"inner_steps": 0, "finetune_steps": 0},
    }
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([override]))
    assert row in compare(tmp_path)
