"""The real entry points in miniature: train.py writes a complete run dir, eval.py reproduces it."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from helpers import TINY_CONV4, TINY_RUN, hparams_record, run_script

from leo_lightning.config.run_label import label_of

pytestmark = pytest.mark.slow

TINY = [*TINY_RUN, *TINY_CONV4, "data.eval_batch_size=16"]


def run(script: str, tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    return run_script(script, tmp_path, *overrides)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("train")
    proc = run("train.py", tmp_path, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(run_dirs) == 1
    return tmp_path, run_dirs[0], proc


def test_run_dir_holds_config_log_checkpoints_events_and_results(trained_run):
    _, run_dir, _ = trained_run
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert list((run_dir / "tensorboard" / label_of(TINY)).glob("events.out.tfevents.*"))
    results = json.loads((run_dir / "results.json").read_text())
    for key in (
        "test/acc",
        "test/acc_ci95",
        "test/episodes",
        "best_ckpt",
        "strategy",
        "wall_seconds",
    ):
        assert key in results
    assert results["test/episodes"] == 32
    assert results["allocator"]["name"] in ("glibc mallopt", "default")  # what the run used


def test_results_count_the_skipped_updates_that_the_last_checkpoint_counts(trained_run):
    """A run whose bf16 steps were skipped now and then must say so where its accuracy is read."""
    _, run_dir, _ = trained_run
    results = json.loads((run_dir / "results.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert results["skipped_updates"] == int(checkpoint["state_dict"]["skipped_steps"])


def test_run_dir_name_has_date_and_microseconds(trained_run):
    _, run_dir, _ = trained_run
    date, time_ = run_dir.parent.name, run_dir.name
    assert (
        len(date.split("-")) == 3 and len(time_.split("-")) == 4 and len(time_.split("-")[3]) == 6
    )


def test_eval_reproduces_the_reported_test_accuracy(trained_run):
    tmp_path, run_dir, _ = trained_run
    results = json.loads((run_dir / "results.json").read_text())
    proc = run("eval.py", tmp_path, f"ckpt_path={results['best_ckpt']}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("test/acc = "))
    assert f"test/acc = {results['test/acc']:.4f}" in line and "(32 episodes)" in line


def test_eval_results_name_the_batch_norm_mode_of_the_checkpoint(trained_run):
    tmp_path, run_dir, _ = trained_run
    trained = json.loads((run_dir / "results.json").read_text())
    eval_dir = tmp_path / "eval_run"
    checkpoint = f"ckpt_path={trained['best_ckpt']}"
    proc = run("eval.py", tmp_path, checkpoint, f"hydra.run.dir={eval_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((eval_dir / "results.json").read_text())
    assert evaluated["batch_norm"] == trained["batch_norm"] == "running statistics"


def test_eval_can_score_a_running_statistics_checkpoint_transductively(trained_run):
    tmp_path, run_dir, _ = trained_run
    trained = json.loads((run_dir / "results.json").read_text())
    eval_dir = tmp_path / "eval_batch_norm"
    checkpoint = f"ckpt_path={trained['best_ckpt']}"
    proc = run("eval.py", tmp_path, checkpoint, "batch_norm=batch", f"hydra.run.dir={eval_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((eval_dir / "results.json").read_text())
    assert evaluated["batch_norm"] == "batch statistics (transductive)"
    assert evaluated["test/acc"] != trained["test/acc"]  # each episode's own statistics


def test_eval_refuses_an_unknown_batch_norm_mode_before_loading_anything(tmp_path):
    eval_dir = tmp_path / "refused"
    proc = run(
        "eval.py", tmp_path, "ckpt_path=x.ckpt", "batch_norm=support", f"hydra.run.dir={eval_dir}"
    )
    assert proc.returncode == 2 and "batch_norm='support'" in proc.stderr
    assert "running, batch" in proc.stderr and not eval_dir.exists()


def test_checkpoint_loads_with_weights_only(trained_run):
    _, run_dir, _ = trained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["leo_lightning"]["config"]["data"]["n_way"] == 5


def test_eval_with_a_missing_checkpoint_names_it(tmp_path):
    proc = run("eval.py", tmp_path, f"ckpt_path={tmp_path}/nope.ckpt")
    assert proc.returncode != 0 and "nope.ckpt" in proc.stderr and "no such file" in proc.stderr


def test_eval_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_text("not a checkpoint")
    proc = run("eval.py", tmp_path, f"ckpt_path={bogus}")
    assert proc.returncode != 0 and "is a text file" in proc.stderr


def test_tensorboard_holds_hparams_with_real_metrics_and_rate_histograms(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, _ = trained_run
    tags = set()
    for events in (run_dir / "tensorboard").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"]) | set(accumulator.Tags()["histograms"])
        tags |= set(accumulator.Tags()["tensors"])
    assert {"train/loss", "train/query_acc", "val/acc", "test/acc"} <= tags
    assert "train/support_loss/latent_0" in tags and "rates/inner_lr" in tags
    assert "train/support_loss/finetune_0" in tags and "train/lr" in tags
    assert "hparams/best_val_acc" in tags and "hp_metric" not in tags
    assert "custom_scalars__config__" in tags  # the Custom Scalars tab's layout
    assert "epoch" not in tags  # Lightning's flat zero, first in the Time Series tab


def test_the_run_logger_drops_only_lightning_s_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from leo_lightning.training.run_logger import RunLogger

    logger = RunLogger(str(tmp_path), name="", version="")
    logger.log_metrics({"epoch": 0, "train/loss": 1.5}, step=3)
    logger.finalize("success")
    accumulator = EventAccumulator(str(tmp_path))
    accumulator.Reload()
    assert accumulator.Tags()["scalars"] == ["train/loss"]


def test_the_resolved_backbone_precision_is_logged_once_and_recorded_everywhere(trained_run):
    """`auto` is decided at the start; results.json, the checkpoint, the log and the HParams
    all say what ran, so two runs on different machines are never silently compared."""
    _, run_dir, _ = trained_run
    recorded = json.loads((run_dir / "results.json").read_text())["backbone_precision"]
    assert recorded["name"] in {"fp32", "bf16"} and recorded["reason"]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["leo_lightning"]["backbone_precision"] == recorded
    log_lines = [
        line
        for line in (run_dir / "train.log").read_text().splitlines()
        if "backbone precision:" in line
    ]
    assert len(log_lines) == 1
    assert f"backbone precision: {recorded['name']} ({recorded['reason']})" in log_lines[0]
    logged = hparams_record(run_dir, "session_start_info").hparams["backbone_precision"]
    assert logged.string_value == recorded["name"]


def test_the_hparams_tab_puts_the_keys_a_run_sets_first(trained_run):
    """TensorBoard orders the HParams columns by whether a key differs between runs, then by
    name, and shows the first few: the keys a run sets are the ones marked as differing."""
    _, run_dir, _ = trained_run
    infos = hparams_record(run_dir, "experiment").hparam_infos
    given = {o.split("=")[0] for o in TINY if "=" in o}  # ~callbacks.progress_bar sets none
    assert {info.name for info in infos if info.differs} == given
    assert len(infos) > 2 * len(given)  # and the fixed keys are there, not differing


def test_the_hparams_tab_shows_integers_and_booleans_as_written(trained_run):
    _, run_dir, _ = trained_run
    values = hparams_record(run_dir, "session_start_info").hparams
    assert values["model.latent_dim"].string_value == "8"  # TINY_CONV4's value
    assert values["trainer.enable_progress_bar"].string_value == "false"
    assert values["model.lr"].number_value == pytest.approx(1e-3)


def test_the_inner_loops_precision_is_recorded_beside_the_backbones(trained_run):
    _, run_dir, _ = trained_run
    results = json.loads((run_dir / "results.json").read_text())
    assert results["inner_loop_precision"] == "fp32"  # LEO's loops, whatever the backbone's


def test_results_count_exactly_the_updates_that_were_skipped(tmp_path, monkeypatch):
    """Two meta-losses made non-finite on purpose: two skipped updates in results.json, and
    still trainer.max_steps applied ones (a hard-coded count could not pass this)."""
    import leo_lightning as ll
    from leo_lightning.training.module import LEOModule

    meta_loss, calls = LEOModule.meta_loss, [0]

    def poisoned(self, out, query_y):
        terms = meta_loss(self, out, query_y)
        if self.training:
            calls[0] += 1
            if calls[0] in (3, 6):
                terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(LEOModule, "meta_loss", poisoned)
    results = ll.train(
        [
            *TINY_RUN,
            *TINY_CONV4,
            "model.inner_lr=0.1",  # this tiny model's inner loop diverges at the default 1.0
            "model.backbone_autocast=null",
            "test=false",
            f"paths.output_dir={tmp_path / 'outputs'}",
            f"paths.data_dir={tmp_path / 'data'}",
        ]
    )
    assert results["skipped_updates"] == 2 and results["meta_train_steps"] == 20
