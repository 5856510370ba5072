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
BatchNorm uses batch statistics (a network that has seen one support set has no running
statistics); queries are normalised together with the support set, as in MAML's reference code.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state

from leo_lightning.data.episode import Episode
from leo_lightning.models.distributions import kl_to_standard_normal, split_gaussian
from leo_lightning.models.leo import LEONet
from leo_lightning.models.shots import shot_weights
from leo_lightning.strategies.base import ModelDims, Strategy, TaskOutput, n_way_of


class PerTask(Strategy):
    meta_trained = False

    def __init__(
        self,
        dims: ModelDims,
        lr: float = 0.01,
        betas: tuple[float, float] = (0.5, 0.9),
        reconstruction_weight: float = 10.0,
        seed: int = 0,
    ):
        super().__init__()
        self.dims, self.lr, self.betas = dims, lr, tuple(betas)
        self.reconstruction_weight, self.seed = reconstruction_weight, seed
        self.tasks_seen = 0  # advances the init seed, so every task gets its own fresh weights

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        n_tasks, n_way = episode.support_y.shape[0], n_way_of(episode)
        template, backbone = self._fresh_backbones(net, n_tasks)
        state = {f"backbone.{k}": v for k, v in backbone.items()}
        state.update(self._fresh_head(n_tasks, n_way, net.feature_dim, episode.support_x.device))
        for tensor in state.values():
            tensor.requires_grad_()

        def features(params: dict[str, Tensor], x: Tensor) -> Tensor:  # one task's examples
            return net.features(x, backbone=lambda t: functional_call(template, params, (t,)))

        initial_mean = split_gaussian(state["q_z"])[0].detach().clone()  # Adam moves q_z in place
        batched_features = torch.vmap(features)
        optimizer = torch.optim.Adam(list(state.values()), lr=self.lr, betas=self.betas)
        example_weights = shot_weights(episode.support_y, n_way).flatten()  # [B*N*K], 1 if equal
        losses = []
        with torch.enable_grad():
            for _ in range(net.inner_steps):
                support = batched_features(_backbone(state), episode.support_x)  # [B, N*K, F]
                mean, std = split_gaussian(state["q_z"])  # [B, N, d] each
                z = mean + std * torch.randn_like(std)
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
                losses.append(nll.detach() / n_tasks)

        with torch.no_grad():
            n_support = episode.support_x.shape[1]
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

    def _fresh_backbones(self, net: LEONet, n_tasks: int) -> tuple[nn.Module, dict[str, Tensor]]:
        """n_tasks freshly initialised copies of the backbone, stacked: name -> [B, ...]."""
        template = copy.deepcopy(net.backbone)
        replace_all_batch_norm_modules_(template)  # batch statistics only, nothing in-place
        copies = []
        with torch.random.fork_rng(devices=[]):
            for task in range(n_tasks):
                torch.manual_seed(self.seed * 1_000_003 + self.tasks_seen + task)
                fresh = copy.deepcopy(template)
                for module in fresh.modules():
                    if hasattr(module, "reset_parameters") and module is not fresh:
                        module.reset_parameters()
                copies.append(fresh)
        params, _ = stack_module_state(copies)
        return template, {k: v.detach() for k, v in params.items()}

    def _fresh_head(self, n_tasks: int, n_way: int, feature_dim: int, device) -> dict[str, Tensor]:
        """Seeded decoder (Glorot) and q(z_n) = N(0, I) per class: raw scale log 2 -> std 1."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.tasks_seen + 7919)
        self.tasks_seen += n_tasks
        d = self.dims.latent_dim
        bound = math.sqrt(6.0 / (d + 2 * feature_dim))
        decoder = (torch.rand(n_tasks, 2 * feature_dim, d, generator=g) * 2 - 1) * bound
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
