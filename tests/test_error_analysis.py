"""Error analysis: every query traced back to its class, errors counted by alphabet, rotation
and kind of confusion (leo_lightning.jobs.error_analysis, benchmarks/error_analysis.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from conftest import ROOT
from helpers import (
    TINY_CONV4,
    random_image_datamodule,
    run_command,
    tiny_module,
    train_checkpoint,
)
from torch.utils.data import default_collate

from leo_lightning.data import ClassPool
from leo_lightning.data.episodes import EpisodeShape, FixedEpisodes
from leo_lightning.jobs.error_analysis import (
    KINDS,
    KINDS_WITHOUT_GROUPS,
    QueryOutcomes,
    collect_outcomes,
    summarize,
)

QUIET = [*TINY_CONV4, "debug=fast", "data.n_query=3", "~callbacks.progress_bar"]
QUIET.append("trainer.enable_progress_bar=false")
# Two characters of alphabet A (one in two rotations) and one of alphabet B.
NAMES = ["A/c1/rot0", "A/c1/rot90", "A/c2/rot0", "B/c3/rot0"]
GROUPS = ["A/rot0", "A/rot90", "A/rot0", "B/rot0"]


def named_pool() -> ClassPool:
    labels = torch.arange(4).repeat_interleave(3)
    return ClassPool.from_labels(labels.view(-1, 1), labels, NAMES, GROUPS)


def outcomes(true: list[int], predicted: list[int]) -> QueryOutcomes:
    """One episode (index 0) holding all four classes; one query per (true, predicted) pair."""
    return QueryOutcomes(
        torch.tensor(true),
        torch.tensor(predicted),
        torch.zeros(len(true), dtype=torch.long),
        torch.arange(4).view(1, 4),
        torch.tensor([0]),
    )


def test_accuracy_is_split_by_alphabet_and_by_rotation():
    report = summarize(outcomes([0, 1, 2, 3], [0, 0, 2, 0]), named_pool())
    assert report["accuracy"] == pytest.approx(0.5) and report["errors"] == 2
    assert report["by_alphabet"] == {
        "A": {"accuracy": 2 / 3, "queries": 3},
        "B": {"accuracy": 0.0, "queries": 1},
    }
    assert report["by_rotation"]["90 deg"] == {"accuracy": 0.0, "queries": 1}
    assert report["by_rotation"]["0 deg"] == {"accuracy": 2 / 3, "queries": 3}


def test_errors_are_classed_by_kind_beside_their_chance_share():
    # c1/rot90 taken for c1/rot0 (rotation), c2 for c1/rot0 (same alphabet), c3 for c1 (other).
    report = summarize(outcomes([1, 2, 3, 0], [0, 0, 0, 0]), named_pool())
    kinds = report["error_kinds"]
    assert [kinds[k]["count"] for k in KINDS] == [1, 1, 1]
    # By chance: c1/rot90's others are {rotation, same alphabet, other}; c2's {same alphabet x2,
    # other}; c3's {other x3}: shares (1/3, 1/3 + 2/3, 1/3 + 1/3 + 1) / 3 errors.
    expected = [1 / 9, 3 / 9, 5 / 9]
    assert [kinds[k]["chance"] for k in KINDS] == pytest.approx(expected)
    assert report["most_confused"][0]["predicted"] == "A/c1/rot0"


def class_coded_episodes(n_classes: int = 9, length: int = 6) -> FixedEpisodes:
    """5-way test episodes from a pool of more than 5 classes whose every pixel is 20 x its
    class id, so any query image says which pool class it is."""
    images = (20 * torch.arange(n_classes, dtype=torch.uint8)).view(-1, 1, 1, 1, 1)
    pool = ClassPool.from_grouped(images.expand(n_classes, 6, 1, 28, 28).contiguous())
    return FixedEpisodes(pool, EpisodeShape(5, 1, 3), seed=0, split="test", length=length)


def test_collected_outcomes_name_each_querys_own_class_and_the_predicted_one():
    episodes, module = class_coded_episodes(), tiny_module()
    got = collect_outcomes(module, episodes, batch_size=4)
    assert got.true_class.shape == (6 * 5 * 3,) and got.episode_classes.shape == (6, 5)
    for index in range(6):
        episode = episodes[index]
        mine = got.episode == index
        assert torch.equal(got.true_class[mine], episode.query_x[:, 0, 0, 0].long() // 20)
        batch = default_collate([episode])
        with torch.no_grad():
            labels = module.adapt_and_score(batch)[0].query_logits.argmax(dim=-1)[0]
        assert torch.equal(got.predicted_class[mine], episodes.classes(index)[labels])


def test_the_summary_accuracy_is_the_test_step_accuracy():
    datamodule = random_image_datamodule(test_episodes=6)
    datamodule.setup("test")
    module = tiny_module()
    got = collect_outcomes(module, datamodule.fixed_episodes("test", 6), batch_size=4)
    with torch.no_grad():
        expected = torch.cat([module.adapt_and_score(b)[1] for b in datamodule.test_dataloader()])
    report = summarize(got, datamodule.pools["test"])
    assert report["accuracy"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert report["by_alphabet"] is None  # a pool without groups has no alphabets
    assert set(report["error_kinds"]) == set(KINDS_WITHOUT_GROUPS)


@pytest.mark.slow
def test_the_script_reports_a_trained_omniglot_checkpoint_by_alphabet(tmp_path):
    """benchmarks/error_analysis.py on a seconds-long experiment=omniglot_minimal run, with
    a data override (within-alphabet episodes): the test alphabets, four rotations, JSON."""
    quick = ["trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_episodes=2"]
    ckpt = train_checkpoint(tmp_path, "run", "experiment=omniglot_minimal", *QUIET, *quick)
    env = dict(os.environ, LEO_DATA_DIR=str(tmp_path / "data"))
    command = [sys.executable, str(ROOT / "benchmarks" / "error_analysis.py"), str(ckpt)]
    proc = run_command([*command, "--episodes", "4", "data.within_alphabet=true"], env, 300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["episodes"] == 4 and report["queries"] == 4 * 5 * 3 and report["within_alphabet"]
    assert set(report["by_alphabet"]) <= {"Korean", "Early_Aramaic"}
    assert report["batch_norm"] and report["machine"]["cpu_count"]
    assert report["error_kinds"][KINDS[0]]["chance"] == 0  # one rotation per episode


def test_the_script_refuses_overrides_that_are_not_data_keys(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "error_analysis.py"), "x.ckpt"]
    proc = run_command([*command, "model.latent_dim=4"], dict(os.environ), 60)
    assert proc.returncode == 2 and "model.latent_dim=4" in proc.stderr
