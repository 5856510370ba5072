"""`per_task`: nothing is shared between tasks; every task is learned from scratch.

For each task a fresh, seeded backbone, decoder and Gaussian q(z_n) per class are optimized on
that task's support set alone with Adam, minimizing
    total_KL + reconstruction_weight * reconstruction_error,
total_KL = sum over classes and latent dimensions of KL(q(z_n) || N(0, I)) and
reconstruction_error = summed negative log-likelihood of the support labels, each class weighted
equally (`shot_weights`: the plain sum with equal shots, and no pull for a class with more shots).
There is nothing to meta-train. This is the lower reference point of the comparison.

The tasks of a batch are optimized together: their weights are stacked along a task dimension
and the backbone runs under `torch.vmap`, so there is no Python loop over tasks in the steps.

A task's result depends on that task alone: its initial weights and its latent noise come from
a generator seeded by (`seed`, the episode's index), never from the global RNG (left as it was)
or a counter of the tasks seen, so it does not change with the batch size, the number of ranks
or the batches before it. BatchNorm uses the statistics of the task's support set, in the steps
and in the prediction alike (a network that has seen one support set has no running
statistics): each query is normalised with the support statistics, independently of the other
queries (not transductive).

Precision: fp32 always. Autocast does not reach operations under `torch.vmap` (checked with torch
2.14 on CPU: a convolution inside vmap returns fp32 under a bf16 autocast), so the backbone's
precision would not apply to these steps anyway; the backbone runs without it, which says so on
every device.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from leo_lightning.data.episode import Episode
from leo_lightning.data.sampling import episode_generator
from leo_lightning.models.batch_norm import (
    has_batch_norm,
    use_support_statistics,
    with_support_batch_norm,
)
from leo_lightning.models.distributions import kl_to_standard_normal, split_gaussian
from leo_lightning.models.leo import LEONet
from leo_lightning.models.shots import shot_weights
from leo_lightning.strategies.base import (
    BN_NONE,
    BN_SUPPORT,
    ModelDims,
    Strategy,
    TaskOutput,
    n_way_of,
    task_indices,
)
from leo_lightning.strategies.spec import NO_STEPS, MovedKey, Setting, StrategySpec

SPEC = StrategySpec(
    name="per_task",
    summary="no meta-learning: a fresh network, q(z) and decoder fitted to each task with Adam",
    steps=NO_STEPS,  # its Adam steps are strategy.adam_steps, not LEO's model.inner_steps
    fitted_per_task="a fresh seeded backbone, decoder and Gaussian q(z) per class, by Adam "
    "steps on the support set alone",
    meta_learned="nothing",
    settings={
        "adam_steps": Setting(
            100,
            "Adam steps per task on its support set",
            check=lambda v: 1 <= v <= 100_000,
            expected=">= 1 and <= 100000",
        ),
        "lr": Setting(0.01, "Adam learning rate per task", check=lambda v: v > 0, expected="> 0"),
        "betas": Setting(
            [0.5, 0.9],
            "Adam betas",
            check=lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
            expected="two values in [0, 1)",
        ),
        "reconstruction_weight": Setting(
            10.0,
            "loss = total KL + this * summed support NLL",
            check=lambda v: v >= 0,
            expected=">= 0",
        ),
        "seed": Setting(0, "seeds the fresh per-task initializations"),
    },
    why_not="it fits a fresh decoder and q(z) per task with Adam: no relation network, shared "
    "decoder or learned rates",
    fixed_batch_norm="each task's fresh network normalises with its support set",
    moved=(MovedKey("model.inner_steps", "strategy.adam_steps", unset=0),),
)


class PerTask(Strategy):
    spec = SPEC
    meta_trained = False

    def __init__(
        self,
        dims: ModelDims,
        adam_steps: int = SPEC.settings["adam_steps"].default,
        lr: float = SPEC.settings["lr"].default,
        betas: tuple[float, float] = tuple(SPEC.settings["betas"].default),
        reconstruction_weight: float = SPEC.settings["reconstruction_weight"].default,
        seed: int = SPEC.settings["seed"].default,
    ):
        super().__init__()
        self.check_settings(
            adam_steps=adam_steps,
            lr=lr,
            betas=list(betas),
            reconstruction_weight=reconstruction_weight,
            seed=seed,
        )
        self.adam_steps = adam_steps
        self.dims, self.lr, self.betas = dims, lr, tuple(betas)
        self.reconstruction_weight, self.seed = reconstruction_weight, seed

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_way, n_support = n_way_of(episode), episode.support_x.shape[1]
        generators = [
            episode_generator(self.seed, "per_task", index) for index in task_indices(episode)
        ]
        device = episode.support_x.device
        template, backbone = self._fresh_backbones(net, generators, device)
        state = {f"backbone.{k}": v for k, v in backbone.items()}
        state.update(self._fresh_head(generators, n_way, net.feature_dim, device))
        for tensor in state.values():
            tensor.requires_grad_()

        def features(params: dict[str, Tensor], x: Tensor) -> Tensor:  # one task's examples
            return net.features(  # fp32: see the module's doc
                x, backbone=lambda t: functional_call(template, params, (t,)), autocast=False
            )

        initial_mean = split_gaussian(state["q_z"])[0].detach().clone()  # Adam moves q_z in place
        batched_features = torch.vmap(features)
        optimizer = torch.optim.Adam(list(state.values()), lr=self.lr, betas=self.betas)
        example_weights = shot_weights(episode.support_y, n_way).flatten()  # [B*N*K], 1 if equal
        losses = []
        with torch.enable_grad():
            for _ in range(self.adam_steps):
                support = batched_features(_backbone(state), episode.support_x)  # [B, N*K, F]
                mean, std = split_gaussian(state["q_z"])  # [B, N, d] each
                noise = torch.stack([torch.randn(std.shape[1:], generator=g) for g in generators])
                z = mean + std * noise.to(device)
                logits = support @ self._weights(state, z).transpose(1, 2)  # [B, N*K, N]
                nll = F.cross_entropy(
                    logits.flatten(0, 1), episode.support_y.flatten(), reduction="none"
                )
                nll = (nll * example_weights).sum()
                kl = kl_to_standard_normal(mean, std).sum()
                loss = kl + self.reconstruction_weight * nll  # tasks are independent: sum them
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(nll.detach() / len(generators))

        with torch.no_grad():
            use_support_statistics(template, n_support)  # queries normalised as the support was
            both = torch.cat([episode.support_x, episode.query_x], dim=1)
            query = batched_features(_backbone(state), both)[:, n_support:]
            mean, _ = split_gaussian(state["q_z"])
            logits = query @ self._weights(state, mean).transpose(1, 2)
        zero = logits.new_zeros(())
        return TaskOutput(
            logits,
            kl=zero,
            encoder_penalty=zero,
            support_losses=losses,
            latents=(initial_mean, mean.detach()),  # the means of q(z) before and after the steps
        )

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        """Everything is fitted per task: backbone, decoder d x 2F and q(z) (N x 2d)."""
        backbone = sum(p.numel() for p in net.backbone.parameters())
        d = self.dims.latent_dim
        return backbone + 2 * net.feature_dim * d + 2 * n_way * d

    def batch_norm_mode(self, net: LEONet) -> str:
        return BN_SUPPORT if has_batch_norm(net.backbone) else BN_NONE

    def _fresh_backbones(
        self, net: LEONet, generators: list[torch.Generator], device: torch.device
    ) -> tuple[nn.Module, dict[str, Tensor]]:
        """A freshly initialised copy of the backbone per task, stacked: name -> [B, ...].

        Initialised on the CPU from each task's own generator, inside a forked CPU RNG: the
        same weights on every device, and no global RNG (CPU or CUDA) is left changed.
        """
        template = with_support_batch_norm(net.backbone).cpu()
        copies = []
        with torch.random.fork_rng(devices=[]):
            for g in generators:
                torch.manual_seed(int(torch.randint(2**62, (), generator=g)))
                fresh = copy.deepcopy(template)
                for module in fresh.modules():
                    if hasattr(module, "reset_parameters") and module is not fresh:
                        module.reset_parameters()
                copies.append(fresh)
        params, _ = stack_module_state(copies)
        return template.to(device), {k: v.detach().to(device) for k, v in params.items()}

    def _fresh_head(
        self, generators: list[torch.Generator], n_way: int, feature_dim: int, device
    ) -> dict[str, Tensor]:
        """Seeded decoder (Glorot) and q(z_n) = N(0, I) per class: raw scale log 2 -> std 1."""
        d = self.dims.latent_dim
        bound = math.sqrt(6.0 / (d + 2 * feature_dim))
        decoder = torch.stack(
            [(torch.rand(2 * feature_dim, d, generator=g) * 2 - 1) * bound for g in generators]
        )
        n_tasks = len(generators)
        q_z = torch.cat(
            [torch.zeros(n_tasks, n_way, d), torch.full((n_tasks, n_way, d), math.log(2.0))], -1
        )
        return {"decoder": decoder.to(device), "q_z": q_z.to(device)}

    @staticmethod
    def _weights(state: dict[str, Tensor], z: Tensor) -> Tensor:
        """Class codes [B, N, d] -> mean classifier weights [B, N, F] through the task's decoder."""
        params = z @ state["decoder"].transpose(1, 2)  # [B, N, 2F]
        return params.chunk(2, dim=-1)[0]


def _backbone(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
