"""Real DDP: 2 CPU processes over gloo (`trainer=ddp_sim`) against one process."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import TINY_RUN, train_checkpoint

pytestmark = pytest.mark.slow

# No batch-wide BatchNorm (SyncBatchNorm needs GPUs), no dropout and no sampling, so that the
# only difference between the runs is how the meta-batch is split between processes.
EXACT = [
    *TINY_RUN,
    "model.latent_dim=8",
    "model.dropout=0",
    "model.deterministic=true",
    "model.backbone_autocast=null",
    "trainer.max_steps=3",
    "trainer.limit_val_batches=0",
    "test=false",
]


def train(tmp_path, name, *overrides):
    return torch.load(train_checkpoint(tmp_path, name, *EXACT, *overrides), weights_only=True)


CASES = {
    "leo": ["model/backbone=flatten"],
    # Every optional switch of issue #16 on (the mixture decoder, the one with most parameters).
    "leo_switches": [
        "model/backbone=flatten",
        "model.relation=attention",
        "model.relation_rounds=2",
        "model.per_step_rates=true",
        "model.decoder=mixture",
    ],
    # MAML's second-order inner loop adapts every parameter: the all-reduce must see the
    # meta-gradient only, never the inner-loop gradients. It needs a backbone to meta-learn (its
    # head starts at zero in every task); its BatchNorm uses each task's support statistics,
    # which the split between processes cannot change.
    # Two SGD steps: the second is the first to move the backbone (the head starts at zero).
    "maml": [
        "strategy=maml",
        "strategy.sgd_steps=2",
        "model.backbone.channels=4",
        "strategy.batch_norm=support",
    ],
}


# A convolution's bias right before BatchNorm has a gradient of exactly zero in theory (the
# normalisation subtracts it again), so in practice rounding noise, which Adam scales up to
# full-size steps: 3 such steps differ between any two summation orders. Not compared.
BIAS_BEFORE_BATCH_NORM = re.compile(r"net\.backbone\.blocks\.\d+\.0\.bias")


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_ranks_agree_and_match_one_process_over_the_union_of_their_episodes(tmp_path, case):
    overrides = CASES[case]
    ddp = train(tmp_path, "ddp", "trainer=ddp_sim", "data.meta_batch_size=2", *overrides)
    single = train(tmp_path, "single", "data.meta_batch_size=4", *overrides)
    assert ddp["global_step"] == single["global_step"] == 3
    for name, value in single["state_dict"].items():
        if BIAS_BEFORE_BATCH_NORM.fullmatch(name):
            continue
        assert torch.allclose(ddp["state_dict"][name], value, atol=1e-5, rtol=1e-4), name
    # The update moved the weights: the comparison is not between two untouched inits.
    init = train(tmp_path, "init", "data.meta_batch_size=4", "trainer.max_steps=1", *overrides)
    moved = max(
        (value.float() - init["state_dict"][name].float()).abs().max()
        for name, value in single["state_dict"].items()
        if name.startswith("net.")
    )
    assert moved > 0
