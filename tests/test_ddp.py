"""Real DDP: 2 CPU processes over gloo (`trainer=ddp_sim`) against one process."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_RUN, train_checkpoint

pytestmark = pytest.mark.slow

# No BatchNorm (SyncBatchNorm needs GPUs), no dropout and no sampling, so that the only
# difference between the runs is how the meta-batch is split between processes.
EXACT = [
    *TINY_RUN,
    "model/backbone=flatten",
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


# Every optional switch of issue #16 on (the mixture decoder, the one with most parameters).
SWITCHES = [
    "model.relation=attention",
    "model.relation_rounds=2",
    "model.per_step_rates=true",
    "model.decoder=mixture",
]


@pytest.mark.parametrize("switches", [[], SWITCHES], ids=["default", "switches"])
def test_ddp_ranks_agree_and_match_one_process_over_the_union_of_their_episodes(tmp_path, switches):
    ddp = train(tmp_path, "ddp", "trainer=ddp_sim", "data.meta_batch_size=2", *switches)
    single = train(tmp_path, "single", "data.meta_batch_size=4", *switches)
    assert ddp["global_step"] == single["global_step"] == 3
    for name, value in single["state_dict"].items():
        assert torch.allclose(ddp["state_dict"][name], value, atol=1e-5, rtol=1e-4), name
    # The update moved the weights: the comparison is not between two untouched inits.
    init = train(tmp_path, "init", "data.meta_batch_size=4", "trainer.max_steps=1", *switches)
    decoder = next(k for k in single["state_dict"] if k.startswith("net.decoder."))
    moved = single["state_dict"][decoder] - init["state_dict"][decoder]
    assert moved.abs().max() > 0
