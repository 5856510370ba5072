"""The small interface every optimization strategy implements.

A strategy answers one question: given a task's support set, how are its latent codes z and the
classifier weights f obtained? Everything else (losses, optimizer, clipping, metrics) lives in
the LightningModule and is the same for every strategy, so a new strategy is one new module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leo_lightning.data.episode import Episode
from leo_lightning.errors import ConfigError
from leo_lightning.models.batch_norm import batch_statistics, has_batch_norm
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.spec import Setting, StrategySpec

FP32, BACKBONE = "fp32", "backbone"
ADAPTATION_PRECISION = Setting(
    FP32,
    "fp32: the adaptation steps run the backbone in fp32, as LEO's loops compute, so that "
    "strategies are compared in one precision; backbone: in the backbone's precision "
    "(model.backbone_autocast, bf16 where it is faster), cheaper but adapting differently",
    choices=(FP32, BACKBONE),
    before=BACKBONE,  # 0.2.0 ran these steps under the backbone's autocast
)


@dataclass(frozen=True)
class ModelDims:
    """Sizes a strategy needs to build its own parts."""

    feature_dim: int
    latent_dim: int
    dropout: float
    # (name, shape) of each backbone parameter, for strategies that keep a tensor per parameter
    backbone_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # The relation network of the strategies that have one (model.relation, model.relation_rounds)
    relation: str = "pairwise"
    relation_rounds: int = 1


@dataclass
class TaskOutput:
    query_logits: Tensor  # [B, N*Q, N]
    kl: Tensor  # scalar; zero at evaluation or where there is no latent distribution
    encoder_penalty: Tensor  # scalar
    support_losses: list[Tensor] = field(default_factory=list)  # per-task support loss per step
    # The loop and index of each step, e.g. latent_0, finetune_0 (the curves' names); empty:
    # step_0, step_1, ...
    support_loss_names: list[str] = field(default_factory=list)
    # The class codes before and after the latent steps, z0 and z [B, N, d], detached (for the
    # latent-norm dashboards); None for a strategy without latent codes.
    latents: tuple[Tensor, Tensor] | None = None


def step_names(loop: str, losses: list) -> list[str]:
    """`<loop>_0`, `<loop>_1`, ...: one curve per step of that loop."""
    return [f"{loop}_{step}" for step in range(len(losses))]


def n_way_of(episode: Episode) -> int:
    """Labels are 0..N-1 in every task, so N is one more than the largest label."""
    return int(episode.support_y.amax()) + 1


def task_indices(episode: Episode) -> list[int]:
    """The index of each task of a batched episode in its episode list; an episode built by
    hand (no index) numbers its tasks by their position in the batch."""
    if episode.index is None:
        return list(range(episode.support_y.shape[0]))
    return [int(i) for i in episode.index.reshape(-1)]


# How BatchNorm normalises at evaluation (in meta-training every strategy uses batch statistics).
BN_RUNNING = "running statistics"
BN_TRANSDUCTIVE = "batch statistics (transductive)"
BN_SUPPORT = "support statistics"
BN_NONE = "none"


class Strategy(nn.Module, ABC):
    #: What the strategy is called and what it reads (strategies/spec.py); every concrete
    #: strategy declares its own.
    spec: ClassVar[StrategySpec]
    #: False for strategies with nothing to meta-learn: training is skipped.
    meta_trained: ClassVar[bool] = True
    #: False for strategies that classify without LEO's decoder: its L2 and orthogonality
    #: penalties are then left out of the meta-loss (they would train an unused matrix).
    uses_decoder: ClassVar[bool] = True
    #: The precision of its steps that run the backbone: ADAPTATION_PRECISION's values, set by
    #: the strategies whose steps do (strategy.adaptation_precision); LEO's loops run on fp32
    #: features either way.
    adaptation_precision: str = FP32

    @abstractmethod
    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        """Adapt to every task of the (batched) episode and classify its queries."""

    @abstractmethod
    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        """How many numbers are adapted by gradient steps for each N-way task (0: none)."""

    def batch_norm_mode(self, net: LEONet) -> str:
        """How the backbone's BatchNorm normalises at evaluation: the module's eval mode uses
        the running statistics gathered in meta-training (not transductive)."""
        return BN_RUNNING if has_batch_norm(net.backbone) else BN_NONE

    def steps_through_backbone(self) -> int:
        """How many times an adaptation runs the backbone again after its first pass, keeping
        each graph in meta-training (MAML's family: once per SGD step); for the memory
        estimate."""
        return 0

    def regularized_weights(self) -> list[Tensor]:
        """Weight matrices of this strategy that take LEO's L2 penalty."""
        return []

    def inner_loop_precision(self, net: LEONet, device: torch.device) -> str:
        """The precision its adaptation computes in, for the record (results.json): "none"
        without adaptation steps; the backbone's (fp32, bf16, fp16) where the steps run the
        backbone under its autocast (strategy.adaptation_precision=backbone); fp32 otherwise.
        A comparison of strategies names it, since bf16 steps adapt differently from fp32."""
        if self.adapted_parameters(net, n_way=2) == 0:
            return "none"
        return net.resolve_precision(device).name if self.adapting_autocast() else FP32

    def adapting_autocast(self) -> bool:
        """Whether its steps through the backbone run under the backbone's autocast."""
        return self.adaptation_precision == BACKBONE

    def check_settings(self, **settings) -> None:
        """Refuse, naming the key, a setting this strategy does not have or a value that breaks
        its rule (a strategy built from Python gets the checks a config gets)."""
        problems = self.spec.setting_problems(settings)
        if problems:
            raise ConfigError(problems)


#: `strategy.batch_norm` of the latent strategies (maml's `support` has no meaning for them).
LATENT_BATCH_NORM_MODES = ("running", "batch")
LATENT_BATCH_NORM = Setting(
    "running",
    "BatchNorm at evaluation. running: the running statistics of meta-training (each query "
    "classified on its own); batch: the statistics of each episode's own support and query "
    "examples, never those of other episodes (transductive: a query depends on the episode's "
    "other queries). Meta-training normalises over the whole meta-batch either way",
    choices=LATENT_BATCH_NORM_MODES,
)


class LatentStrategy(Strategy):
    """Strategies that start from latent codes: z0 -> latent steps -> decode -> fine-tune.

    Subclasses only say where z0 comes from. `batch_norm` says how the backbone's BatchNorm
    normalises at evaluation: `running`, with the running statistics of meta-training (each
    query on its own); `batch`, with the statistics of each episode's own support and query
    examples (transductive: a query's prediction depends on the episode's other examples, but
    never on the other episodes of an evaluation batch). Meta-training normalises over the
    whole meta-batch in both modes.
    """

    def __init__(self, batch_norm: str = LATENT_BATCH_NORM.default):
        super().__init__()
        self.check_settings(batch_norm=batch_norm)
        self.batch_norm = batch_norm

    def episode_features(self, net: LEONet, episode: Episode) -> tuple[Tensor, Tensor]:
        """Support and query features [B, N*K, F], [B, N*Q, F] from one backbone pass over
        both (in meta-training BatchNorm sees the whole meta-batch); one pass per episode at a
        transductive evaluation, so that each episode is normalised by its own statistics."""
        n_support = episode.support_y.shape[1]
        both = torch.cat([episode.support_x, episode.query_x], dim=1)
        if self.batch_norm == "batch" and not net.training:
            with batch_statistics(net.backbone):
                features = torch.stack([net.features(task) for task in both])
        else:
            features = net.features(both)
        return features.split([n_support, both.shape[1] - n_support], dim=1)

    def batch_norm_mode(self, net: LEONet) -> str:
        if self.batch_norm == "batch" and has_batch_norm(net.backbone):
            return BN_TRANSDUCTIVE
        return super().batch_norm_mode(net)

    @abstractmethod
    def initial_latents(
        self, net: LEONet, support: Tensor, labels: Tensor, n_way: int
    ) -> tuple[Tensor, Tensor]:
        """support features [B, N*K, F], labels [B, N*K] -> z0 [B, N, d] and its KL (scalar)."""

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way = n_way_of(episode)
        support, query = self.episode_features(net, episode)
        z0, kl = self.initial_latents(net, support, episode.support_y, n_way)
        z, latent_losses = net.adapt_latents(z0, support, episode.support_y)
        # Pulls the initial code towards the adapted one; only z0 receives the gradient.
        encoder_penalty = F.mse_loss(z0, z.detach())
        weights, finetune_losses = net.finetune(net.decode(z), support, episode.support_y)
        return TaskOutput(
            query_logits=net.logits(query, weights),
            kl=kl,
            encoder_penalty=encoder_penalty,
            support_losses=latent_losses + finetune_losses,
            support_loss_names=step_names("latent", latent_losses)
            + step_names("finetune", finetune_losses),
            latents=(z0.detach(), z.detach()),
        )

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        """N codes of size d in the latent steps, then N weight vectors of size F fine-tuned."""
        latents = n_way * net.latent_dim if net.inner_steps else 0
        return latents + (n_way * net.feature_dim if net.finetune_steps else 0)
