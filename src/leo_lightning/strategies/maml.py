"""`maml`: every backbone and head parameter adapted by SGD on the support set (Finn et al., 2017).

Each task starts from the meta-learned backbone and a zero linear head (N x F weights and N
biases), takes `strategy.sgd_steps` steps  theta <- theta - lr * grad L_support(theta)  on the
mean support cross-entropy, and classifies its queries with the adapted parameters. The steps
are functional (`torch.func.functional_call` over a dict of tensors) and differentiated with
`torch.autograd.grad`, second order in meta-training unless `strategy.first_order` (FOMAML), so
no inner-loop gradient ever lands in a parameter's `.grad`.

Its step count, rate and order are its own settings (`strategy.sgd_steps`, `strategy.sgd_lr`,
`strategy.first_order`), not LEO's latent-step settings under `model.*`; the spellings of 0.2.0
(`model.inner_steps`, `strategy.inner_lr`, `model.first_order`) still work and are moved, with a
line saying so (spec.MovedKey), in configs and in the checkpoints that stored them.

Head: MAML's meta-learned head is N-specific, and any class-slot-specific start would break the
exchangeability of the labels (they are permuted per task). A single learned vector shared by
every slot is exactly the zero init: softmax ignores a shift common to all classes, so its
gradient is zero. Hence a zero head, which works for any N. With it, the first step moves only
the head (the backbone's gradient passes through the zero weights); later steps move both.

Precision: its steps run the backbone in fp32 by default, whatever `model.backbone_autocast`
says, so that it adapts in the precision LEO's loops compute in;
`strategy.adaptation_precision=backbone` runs them in the backbone's (bf16 where faster), as
0.2.0 did (its checkpoints keep that).

Features: the raw backbone output, as in the original MAML (LEO's unit-norm scaling is tuned for
LEO's rates). BatchNorm, `batch_norm=`
- `running` (as LEO): batch statistics of each forward pass (the support set, then the
  queries) in meta-training, the running statistics at evaluation (not transductive). It costs
  MAML much accuracy (a tiny glyph task after 20 meta-steps: 38 % against 68 % with `support`):
  the running statistics average over the parameters of every inner step and match none.
- `batch`: batch statistics in meta-training and at evaluation, as MAML's reference code: the
  queries are normalised together, so each prediction depends on the other queries
  (transductive).
- `support` (default): the statistics of the task's support set under the current parameters
  normalise its support and its queries, in meta-training and at evaluation: consistent, and
  each query is classified on its own (not transductive).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from leo_lightning.data.episode import Episode
from leo_lightning.models.batch_norm import (
    batch_statistics,
    has_batch_norm,
    use_support_statistics,
    with_support_batch_norm,
)
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.base import (
    ADAPTATION_PRECISION,
    BN_NONE,
    BN_RUNNING,
    BN_SUPPORT,
    BN_TRANSDUCTIVE,
    ModelDims,
    Strategy,
    TaskOutput,
    n_way_of,
    step_names,
)
from leo_lightning.strategies.spec import NO_STEPS, MovedKey, Setting, StrategySpec

BATCH_NORM_MODES = ("running", "batch", "support")
HEAD = ("head.weight", "head.bias")

# Its SGD steps are its own setting (strategy.sgd_steps), none of LEO's model.* step counts;
# each runs the backbone again (Strategy.steps_through_backbone, for the memory estimate)
SGD_STEPS_SPEC = NO_STEPS
SGD_STEPS = Setting(
    5,
    "SGD steps per task, in meta-training and at test (>= 1: its head starts at zero, so "
    "without a step every class scores the same)",
    check=lambda v: 1 <= v <= 1000,
    expected=">= 1 and <= 1000 (each step's graph is kept for the meta-gradient)",
)
SGD_LR = Setting(
    0.4,
    "SGD rate of the inner steps (MAML's Omniglot value), every parameter",
    check=lambda v: v > 0,
    expected="> 0",
)
FIRST_ORDER = Setting(
    False, "true: the outer gradient treats each inner gradient as a constant (FOMAML)"
)
# The spellings of 0.2.0, when MAML read LEO's step settings
MOVED = (
    MovedKey("model.inner_steps", "strategy.sgd_steps", unset=0),
    MovedKey("model.first_order", "strategy.first_order", unset=False),
    MovedKey("strategy.inner_lr", "strategy.sgd_lr"),
)
BATCH_NORM = Setting(
    "support",
    "support: the task's support-set statistics normalise its support and queries, in "
    "training and test (not transductive); running: batch statistics in training, running ones "
    "at test (as LEO; poor for MAML, whose inner steps change the activations); batch: the "
    "statistics of the batch classified, as MAML's reference code (transductive: each query "
    "depends on the other queries)",
    choices=BATCH_NORM_MODES,
)
TRAINED_BATCH_NORM = "its strategy.batch_norm, set at training, also shapes its inner loop"


class MAML(Strategy):
    spec = StrategySpec(
        name="maml",
        summary="MAML: every backbone parameter and a zero linear head adapted by SGD steps",
        steps=SGD_STEPS_SPEC,
        fitted_per_task="every backbone parameter and a zero linear head (N x F + N), by SGD steps",
        meta_learned="the backbone's initialisation (the head always starts at zero)",
        settings={
            "sgd_steps": SGD_STEPS,
            "sgd_lr": SGD_LR,
            "first_order": FIRST_ORDER,
            "batch_norm": BATCH_NORM,
            "adaptation_precision": ADAPTATION_PRECISION,
        },
        why_not="it adapts the backbone and a linear head: no relation network, no LEO decoder, "
        "no learned latent or fine-tuning rates",
        fixed_batch_norm=TRAINED_BATCH_NORM,
        first_order_name="fomaml",
        moved=MOVED,
    )
    uses_decoder = False

    def __init__(
        self,
        dims: ModelDims,
        sgd_steps: int = SGD_STEPS.default,
        sgd_lr: float = SGD_LR.default,
        first_order: bool = FIRST_ORDER.default,
        batch_norm: str = BATCH_NORM.default,
        adaptation_precision: str = ADAPTATION_PRECISION.default,
    ):
        super().__init__()
        self.check_settings(
            sgd_steps=sgd_steps,
            sgd_lr=sgd_lr,
            first_order=first_order,
            batch_norm=batch_norm,
            adaptation_precision=adaptation_precision,
        )
        self.sgd_steps, self.sgd_lr, self.first_order = sgd_steps, sgd_lr, first_order
        self.batch_norm, self.adaptation_precision = batch_norm, adaptation_precision

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way = n_way_of(episode)
        network = self._network(net)
        logits, losses = [], []
        for task in range(episode.support_y.shape[0]):  # each task adapts its own parameters
            task_logits, task_losses = self.adapt_and_classify(
                net,
                network,
                episode.support_x[task],
                episode.support_y[task],
                episode.query_x[task],
                n_way,
            )
            logits.append(task_logits)
            losses.append(task_losses)
        zero = logits[0].new_zeros(())
        return TaskOutput(
            query_logits=torch.stack(logits),  # [B, N*Q, N]
            kl=zero,
            encoder_penalty=zero,
            support_losses=[torch.stack(step).mean() for step in zip(*losses)],
            support_loss_names=step_names("sgd", losses[0]),
        )

    def adapt_and_classify(
        self,
        net: LEONet,
        network: nn.Module,
        support_x: Tensor,
        support_y: Tensor,
        query_x: Tensor,
        n_way: int,
    ) -> tuple[Tensor, list[Tensor]]:
        """One task: support [N*K, ...] with labels [N*K] -> query logits [N*Q, N] and the
        support loss before each step. `network` runs the backbone's parameters."""
        params = self.initial_parameters(net, n_way, support_x.device)
        rates = self.rates(params)
        keep_graph = net.training and not self.first_order
        if not net.training:  # evaluation: no outer gradient, so no graph to the parameters
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            rates = {k: r.detach() if isinstance(r, Tensor) else r for k, r in rates.items()}
        losses = []
        for _ in range(self.sgd_steps):
            loss = F.cross_entropy(self.logits(net, network, params, support_x), support_y)
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=keep_graph)
            params = {
                name: value - rates[name] * grad
                for (name, value), grad in zip(params.items(), grads)
            }
            losses.append(loss.detach())
        if self.batch_norm == "support":  # the queries, normalised with the support statistics
            n_support = len(support_x)
            use_support_statistics(network, n_support)
            both = torch.cat([support_x, query_x])
            query_logits = self.logits(net, network, params, both)[n_support:]
            use_support_statistics(network, None)
            return query_logits, losses
        return self.logits(net, network, params, query_x), losses

    def _network(self, net: LEONet) -> nn.Module:
        """The module the backbone parameters run in: the backbone itself, or in `support` mode
        a copy whose BatchNorm layers take the statistics of the support set."""
        if self.batch_norm == "support":
            return with_support_batch_norm(net.backbone)
        return net.backbone

    def initial_parameters(self, net: LEONet, n_way: int, device) -> dict[str, Tensor]:
        """The meta-learned backbone parameters and a zero head, by name."""
        params = {f"backbone.{name}": p for name, p in net.backbone.named_parameters()}
        params["head.weight"] = torch.zeros(n_way, net.feature_dim, device=device).requires_grad_()
        params["head.bias"] = torch.zeros(n_way, device=device).requires_grad_()
        return params

    def rates(self, params: dict[str, Tensor]) -> dict[str, Tensor | float]:
        """The inner learning rate of each parameter: one fixed rate for all in MAML."""
        return dict.fromkeys(params, self.sgd_lr)

    def logits(
        self, net: LEONet, network: nn.Module, params: dict[str, Tensor], x: Tensor
    ) -> Tensor:
        """[M, *input_shape] -> [M, N] under the given backbone and head parameters."""
        backbone = {
            k[len("backbone.") :]: v for k, v in params.items() if k.startswith("backbone.")
        }
        transductive = self.batch_norm == "batch" and not net.training
        with batch_statistics(network) if transductive else contextlib.nullcontext():
            features = net.features(
                x,
                backbone=lambda t: functional_call(network, backbone, (t,)),
                normalize=False,
                autocast=self.adapting_autocast(),
            )
        return features @ params["head.weight"].T + params["head.bias"]

    def steps_through_backbone(self) -> int:
        return self.sgd_steps

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        """Every backbone parameter and the N x F + N head."""
        backbone = sum(p.numel() for p in net.backbone.parameters())
        return backbone + n_way * net.feature_dim + n_way

    def batch_norm_mode(self, net: LEONet) -> str:
        if not has_batch_norm(net.backbone):
            return BN_NONE
        modes = {"running": BN_RUNNING, "batch": BN_TRANSDUCTIVE, "support": BN_SUPPORT}
        return modes[self.batch_norm]
