"""experiment=omniglot_minimal is issue #17's 10-minute recipe, omniglot_minimal_20w its 20-way
form, and omniglot_minimal_quick the short, strategy-neutral form the comparison benchmarks run."""

from __future__ import annotations

import pytest
from test_config import compose_train
from test_omniglot_105 import leaves

from leo_lightning.config.validation import config_problems

STRATEGIES = ["amortized", "amortized_pure", "universal", "maml", "fomaml", "meta_sgd", "protonet"]


def changed_keys(a: str, b: str) -> set[str]:
    left, right = leaves(compose_train(f"experiment={a}")), leaves(compose_train(f"experiment={b}"))
    return {k for k in left.keys() | right.keys() if left.get(k) != right.get(k)}


def test_the_recipe_is_the_quick_experiment_with_augmentation_a_schedule_and_a_budget():
    cfg = compose_train("experiment=omniglot_minimal")
    assert cfg.data.augment._target_ == "leo_lightning.data.augment.RandomAffine"
    assert cfg.model.lr_schedule == "cosine" and cfg.trainer.max_steps > 750
    assert cfg.trainer.max_time == "00:00:10:00"
    assert not {k for k in changed_keys("omniglot_minimal_quick", "omniglot_minimal")
                if k.startswith("data.source.")}  # fmt: skip  # the same alphabets and episodes
    assert config_problems(cfg) == []


def test_the_20_way_recipe_changes_only_the_ways_the_validation_size_and_the_step_budget():
    assert changed_keys("omniglot_minimal", "omniglot_minimal_20w") == {
        "data.n_way",
        "data.val_episodes",
        "data.meta_batch_size",
        "trainer.max_steps",
    }
    cfg = compose_train("experiment=omniglot_minimal_20w")
    five_way = compose_train("experiment=omniglot_minimal")
    assert cfg.data.n_way == 20 and config_problems(cfg) == []
    # a 20-way task costs ~4x a 5-way one: fewer tasks a step, and fewer steps, fill 10 minutes
    assert cfg.data.meta_batch_size < five_way.data.meta_batch_size
    assert cfg.trainer.max_steps < five_way.trainer.max_steps


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_meta_learned_strategy_runs_the_quick_experiment(strategy):
    cfg = compose_train("experiment=omniglot_minimal_quick", f"strategy={strategy}")
    assert cfg.data.augment._target_.endswith("no_augmentation") and cfg.trainer.max_steps == 750
    assert config_problems(cfg) == []
