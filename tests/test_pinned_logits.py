"""With every optional switch at its default, LEO computes exactly what it computed before the
switches existed: the logits of a tiny seeded model are pinned to stored values
(tests/data/pinned_logits.json; `python tests/test_pinned_logits.py` rewrites them, which is only
right when a change is meant to alter the numbers). The evaluation values are those of commit
6f19227. The training values depend on the random stream, and were stored again when the inner
loop began drawing its dropout masks four to a random number and each loop's weight noise in one
call (the same distributions; tests/test_closed_form_inner_loop.py checks the arithmetic against
the autograd formulation on the same random numbers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import random_episode, tiny_module  # noqa: E402

PINNED = Path(__file__).parent / "data" / "pinned_logits.json"
STRATEGIES = {
    "amortized": {"_target_": "leo_lightning.strategies.Amortized"},
    "universal": {"_target_": "leo_lightning.strategies.Universal"},
}


def logits(strategy: str, training: bool) -> list:
    """Query logits [B, N*Q, N] of a seeded tiny model on a seeded episode; in training the
    latents and weights are sampled from the seeded global RNG."""
    torch.manual_seed(0)
    module = tiny_module(strategy=STRATEGIES[strategy])
    module.train(training)
    torch.manual_seed(1)
    with torch.enable_grad():
        out = module.strategy(module.net, random_episode(b=2, n=5, k=1, q=2, seed=3))
    return out.query_logits.detach().double().tolist()


CASES = [(s, mode) for s in STRATEGIES for mode in ("train", "eval")]


@pytest.mark.parametrize(("strategy", "mode"), CASES)
def test_default_switches_give_the_logits_stored_before_the_switches(strategy, mode):
    stored = torch.tensor(json.loads(PINNED.read_text())[f"{strategy}/{mode}"])
    now = torch.tensor(logits(strategy, training=mode == "train"))
    torch.testing.assert_close(now, stored, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    torch.set_num_threads(1)
    values = {f"{s}/{m}": logits(s, training=m == "train") for s, m in CASES}
    PINNED.write_text(json.dumps(values) + "\n")
    print(f"wrote {PINNED}")
