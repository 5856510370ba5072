"""The two baselines on frozen features that LEO is compared with: nearest_centroid (SimpleShot)
and logistic_regression (RFS). Nothing is meta-learned, so what is checked is the classifier
each builds per task; and every strategy states what it fits per task and what it meta-learns."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_RUN, run_script, tiny_module

from leo_lightning.data.episode import Episode
from leo_lightning.errors import ConfigError
from leo_lightning.strategies import LogisticRegression, ModelDims
from leo_lightning.strategies.catalog import built_in
from leo_lightning.strategies.logistic_regression import fit_logistic_regression, penalised_loss

FLATTEN = {"_target_": "leo_lightning.models.Flatten"}
NEAREST_CENTROID = {"_target_": "leo_lightning.strategies.NearestCentroid"}
LOGISTIC_REGRESSION = {"_target_": "leo_lightning.strategies.LogisticRegression"}


def feature_module(strategy: dict, dim: int):
    """A module whose backbone passes [dim] features through unchanged, in evaluation mode."""
    return tiny_module(
        backbone=FLATTEN, strategy=strategy, input_shape=[dim], inner_steps=0, finetune_steps=0
    ).eval()


def random_task(n_way: int, shots: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm random features [N*K, F] and their labels [N*K]: a task to fit, not to learn."""
    g = torch.Generator().manual_seed(seed)
    features = F.normalize(torch.randn(n_way * shots, dim, generator=g), dim=-1)
    return features, torch.arange(n_way).repeat_interleave(shots)


def test_nearest_centroid_logits_are_negative_squared_distances_to_normalised_centroids():
    # Class 0: (3, 4) and (0, 2) normalise to (0.6, 0.8) and (0, 1): centroid (0.3, 0.9).
    # Class 1: (2, 0) and (0, -3) normalise to (1, 0) and (0, -1): centroid (0.5, -0.5).
    support = torch.tensor([[3.0, 4.0], [2.0, 0.0], [0.0, 2.0], [0.0, -3.0]])
    # (0, 7) -> (0, 1): 0.3^2 + 0.1^2 = 0.1 from class 0, 0.5^2 + 1.5^2 = 2.5 from class 1.
    # (8, -6) -> (0.8, -0.6): 0.5^2 + 1.5^2 = 2.5 from class 0, 0.3^2 + 0.1^2 = 0.1 from class 1.
    query = torch.tensor([[0.0, 7.0], [8.0, -6.0]])
    episode = Episode(
        support[None], torch.tensor([[0, 1, 0, 1]]), query[None], torch.tensor([[0, 1]])
    )
    logits = feature_module(NEAREST_CENTROID, 2)(episode).query_logits
    torch.testing.assert_close(logits, torch.tensor([[[-0.1, -2.5], [-2.5, -0.1]]]))


def test_nearest_centroid_without_normalisation_is_protonets_rule_on_the_same_features():
    g = torch.Generator().manual_seed(0)
    episode = Episode(
        torch.randn(2, 6, 4, generator=g),
        torch.tensor([[0, 1, 2, 0, 1, 2]] * 2),
        torch.randn(2, 3, 4, generator=g),
        torch.tensor([[0, 1, 2]] * 2),
    )
    raw = feature_module({**NEAREST_CENTROID, "normalize": False}, 4)(episode).query_logits
    protonet = feature_module({"_target_": "leo_lightning.strategies.ProtoNet"}, 4)
    torch.testing.assert_close(raw, protonet(episode).query_logits)


def test_logistic_regression_classifies_a_linearly_separable_support_set_perfectly():
    """Three classes around three axes of an 8-d space, 4 shots each, scored on themselves; under
    no_grad, as evaluation runs, which the fit must overcome to take its steps."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(4)  # [N*K], classes interleaved as in a shuffled episode
    support = 5 * F.one_hot(labels, 8).float() + torch.randn(12, 8, generator=g)  # [N*K, F]
    episode = Episode(support[None], labels[None], support[None], labels[None])
    with torch.no_grad():
        logits = feature_module(LOGISTIC_REGRESSION, 8)(episode).query_logits  # [1, N*K, N]
    assert torch.equal(logits.argmax(-1), episode.query_y)


def test_logistic_regression_weights_are_the_minimiser_of_the_penalised_objective():
    """The gradient of sum_i CE + (l2/2)||W||^2, taken in float64 at the fitted weights, is
    zero to within fp32 rounding: below 1e-5 per support example (0.74 at the start, W = 0;
    the fit stops at 1e-6 per example as its own fp32 arithmetic measures it)."""
    features, labels = random_task(n_way=5, shots=5, dim=64, seed=1)
    l2 = 0.5  # not the default: a fit that ignored or rescaled it would miss the optimum
    weights, bias = fit_logistic_regression(features[None], labels[None], 5, l2, max_iter=1000)
    w, b = weights[0].double().requires_grad_(), bias[0].double().requires_grad_()
    ones = torch.ones(len(labels), dtype=torch.float64)
    loss = penalised_loss(w, b, features.double(), labels, ones, l2)
    gradient = max(g.abs().max().item() for g in torch.autograd.grad(loss, [w, b]))
    assert gradient < 1e-5 * len(labels)


def test_a_batched_logistic_regression_fit_equals_fitting_each_task_alone():
    tasks = [random_task(n_way=3, shots=2, dim=8, seed=seed) for seed in range(3)]
    features = torch.stack([x for x, _ in tasks])  # [B, N*K, F]
    labels = torch.stack([y for _, y in tasks])  # [B, N*K]
    weights, bias = fit_logistic_regression(features, labels, 3, l2=1.0, max_iter=100)
    for task, (x, y) in enumerate(tasks):
        alone_weights, alone_bias = fit_logistic_regression(x[None], y[None], 3, 1.0, 100)
        assert torch.equal(weights[task], alone_weights[0])
        assert torch.equal(bias[task], alone_bias[0])


def test_a_logistic_regression_fit_leaves_the_cpu_thread_count_as_it_found_it():
    """The fits run on one thread (each is too small for more); the process's count returns."""
    threads = torch.get_num_threads()
    features, labels = random_task(n_way=3, shots=1, dim=4, seed=0)
    fit_logistic_regression(features[None], labels[None], 3, l2=1.0, max_iter=10)
    assert torch.get_num_threads() == threads


def test_a_penalty_that_is_not_positive_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"strategy.l2=0.0: must be > 0"):
        LogisticRegression(ModelDims(8, 2, 0.0), l2=0.0)


@pytest.mark.parametrize("strategy", built_in(), ids=lambda c: c.spec.name)
def test_every_strategy_states_what_it_fits_per_task_and_what_it_meta_learns(strategy):
    spec = strategy.spec
    assert spec.fitted_per_task and spec.meta_learned
    # A strategy that is not meta-trained says it meta-learns nothing, and only such a one does.
    assert spec.meta_learned.startswith("nothing") == (not strategy.meta_trained)


@pytest.mark.slow
def test_nearest_centroid_on_flattened_glyphs_is_scored_without_training(tmp_path):
    """Pixels as features (flatten: 28 x 28 -> 784): no step, and well above chance (1/5)."""
    proc = run_script(
        "train.py", tmp_path, *TINY_RUN, "strategy=nearest_centroid", "model/backbone=flatten"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "outputs").glob("runs/*/*/results.json")
    results = json.loads(path.read_text())
    assert results["strategy"] == "NearestCentroid" and results["meta_train_steps"] == 0
    assert results["test/episodes"] == 32 and results["test/acc"] > 0.5


@pytest.mark.slow
def test_help_lists_both_baselines_with_what_they_fit_and_meta_learn(tmp_path):
    proc = run_script("train.py", tmp_path, "--help", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    options = next(line for line in proc.stdout.splitlines() if line.startswith("strategy: "))
    assert {"nearest_centroid", "logistic_regression"} <= set(options[10:].split(", "))
    for name in ("nearest_centroid", "logistic_regression"):
        _, *rest = proc.stdout.split(f"\n{name}: ")[1].splitlines()
        entry = list(itertools.takewhile(lambda line: line.startswith("    "), rest))
        assert any(line.startswith("    fitted per task: ") for line in entry), entry
        assert any(line.startswith("    meta-learned: nothing") for line in entry), entry
    assert "strategy.l2 (default 1.0; > 0): weight of the penalty" in proc.stdout
    assert "strategy.normalize (default True; one of True, False)" in proc.stdout
