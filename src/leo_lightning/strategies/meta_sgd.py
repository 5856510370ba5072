"""`meta_sgd`: MAML with a meta-learned inner rate per parameter value (Li et al., 2017).

theta <- theta - alpha (.) grad L_support(theta), alpha a tensor of the same shape as each
backbone parameter, meta-trained with the backbone (its first-order gradient survives even with
`strategy.first_order`, through alpha (.) grad). The head's weights are N-specific and start at
zero (see maml.py), so their rate cannot be: one rate per feature [F], shared by every class row,
and one rate for the N biases, which keeps the label slots exchangeable and works for any N.
All rates start at `strategy.sgd_lr`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from leo_lightning.strategies.base import ADAPTATION_PRECISION, ModelDims
from leo_lightning.strategies.maml import (
    BATCH_NORM,
    FIRST_ORDER,
    MAML,
    MOVED,
    SGD_LR,
    SGD_STEPS,
    SGD_STEPS_SPEC,
    TRAINED_BATCH_NORM,
)
from leo_lightning.strategies.spec import Setting, StrategySpec


class MetaSGD(MAML):
    spec = StrategySpec(
        name="meta_sgd",
        summary="MAML with a meta-learned inner rate per parameter tensor entry",
        steps=SGD_STEPS_SPEC,
        fitted_per_task="every backbone parameter and a zero linear head (N x F + N), by SGD "
        "steps at the learned rates",
        meta_learned="the backbone's initialisation and the inner rates: one per backbone "
        "parameter value, one per feature and one for the biases of the head",
        settings={
            "sgd_steps": SGD_STEPS,
            "sgd_lr": Setting(
                SGD_LR.default,
                "initial value of every learned rate",
                check=SGD_LR.check,
                expected=SGD_LR.expected,
            ),
            "first_order": FIRST_ORDER,
            "batch_norm": BATCH_NORM,
            "adaptation_precision": ADAPTATION_PRECISION,
        },
        why_not="it adapts the backbone and a linear head with its own per-parameter rates: no "
        "relation network, no LEO decoder",
        fixed_batch_norm=TRAINED_BATCH_NORM,
        moved=MOVED,
    )

    def __init__(
        self,
        dims: ModelDims,
        sgd_steps: int = SGD_STEPS.default,
        sgd_lr: float = SGD_LR.default,
        first_order: bool = FIRST_ORDER.default,
        batch_norm: str = BATCH_NORM.default,
        adaptation_precision: str = ADAPTATION_PRECISION.default,
    ):
        super().__init__(dims, sgd_steps, sgd_lr, first_order, batch_norm, adaptation_precision)
        shapes = {f"backbone.{name}": shape for name, shape in dims.backbone_shapes}
        shapes["head.weight"] = (1, dims.feature_dim)  # broadcast over the N class rows
        shapes["head.bias"] = (1,)
        # ParameterDict keys may not contain dots.
        self.learned_rates = nn.ParameterDict(
            {
                _key(name): nn.Parameter(torch.full(shape, float(sgd_lr)))
                for name, shape in shapes.items()
            }
        )

    def rates(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name: self.learned_rates[_key(name)] for name in params}


def _key(name: str) -> str:
    return name.replace(".", "__")
