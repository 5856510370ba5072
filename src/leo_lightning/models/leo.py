"""The parts of LEO that every strategy shares: backbone features, the decoder, the classifier
and the two gradient-based adaptation loops with their learned per-dimension rates.

Two of the optional switches of issue #16 live here (both off by default, which is the paper's
LEO): `decoder` picks the decoder (`linear`, `task_conditioned`, `mixture`, see DECODERS), and
`per_step_rates` gives each inner step its own learned rate vector (progressive latent
optimization): alpha [S, d] for the S = inner_steps latent steps and eta [T, F] for the
T = finetune_steps fine-tuning steps instead of one alpha [d] and one eta [F], each row
initialised from inner_lr / finetune_lr, so at initialisation both give the same steps. Step t
then uses row t,
    z_{t+1} = z_t - (alpha_t / K) * grad_z L_support(z_t),
which lets meta-training learn, say, large first steps and small last ones. The rates are then
tied to the step counts: a model with per-step rates refuses another number of steps, naming
the key, rather than reusing or dropping rates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from leo_lightning.errors import CheckpointError
from leo_lightning.models import precision
from leo_lightning.models.decoder import Decoder
from leo_lightning.models.distributions import draw_gaussian, draw_gaussian_vjp, weight_std_offset
from leo_lightning.models.dropout import FeatureDropout
from leo_lightning.models.inputs import as_float, feature_dim
from leo_lightning.models.mixture_decoder import MixtureDecoder
from leo_lightning.models.support import SupportTargets, support_gradient
from leo_lightning.models.task_decoder import TaskConditionedDecoder

log = logging.getLogger(__name__)

# `model.compile_inner_loops`: eager (None) or a torch.compile mode.
COMPILE_MODES = (None, "default", "reduce-overhead")
COMPILE_MODES_EXPECTED = "null, default or reduce-overhead"

# `model.decoder`: every one maps class codes [B, N, d] -> Gaussian params [B, N, 2F], has a
# vjp() for the latent steps' closed-form gradient, an orthogonality_penalty() and lists its
# regularized_weights().
DECODERS = ("linear", "task_conditioned", "mixture")


def build_decoder(kind: str, latent_dim: int, feature_dim: int, experts: int) -> nn.Module:
    """The decoder of `model.decoder=kind`; `experts` (model.decoder_experts) is read by
    `mixture` only."""
    if kind == "linear":
        return Decoder(latent_dim, feature_dim)
    if kind == "task_conditioned":
        return TaskConditionedDecoder(latent_dim, feature_dim)
    if kind == "mixture":
        return MixtureDecoder(latent_dim, feature_dim, experts)
    raise ValueError(f"model.decoder={kind!r}: must be one of {', '.join(DECODERS)}")


def initial_rates(init: float, size: int, steps: int | None) -> Tensor:
    """[size] (one rate vector shared by every step) or [steps, size] (one row per step)."""
    shape = (size,) if steps is None else (steps, size)
    return torch.full(shape, float(init))


def describe_rates(shape: tuple[int, ...], steps_key: str) -> str:
    """What a rate tensor's shape says about the model that learned it."""
    if len(shape) == 2:
        return f"per-step rates for model.{steps_key}={shape[0]} (model.per_step_rates=true)"
    return "one rate vector shared by every step (model.per_step_rates=false)"


class LEONet(nn.Module):
    """Backbone -> unit-norm features; latent codes -> classifier weights -> logits.

    The inner loops compute their gradients as tensor ops (models/support.py), so inner-loop
    gradients never land in the parameters' ``.grad`` (and never trigger DDP's gradient
    all-reduce). In training they keep the graph (second order) unless ``first_order``; at
    evaluation they record none.
    """

    def __init__(
        self,
        backbone: nn.Module,
        input_shape: tuple[int, ...],
        latent_dim: int,
        inner_steps: int,
        inner_lr: float,
        finetune_steps: int,
        finetune_lr: float,
        first_order: bool,
        dropout: float,
        channels_last: bool,
        backbone_autocast: str | None,
        deterministic: bool,
        per_step_rates: bool,
        decoder: str,
        decoder_experts: int,
        compile_inner_loops: str | None,
        latent_step_bound: float | None,
    ):
        """Every setting given: their defaults are the model's (training/settings.py)."""
        super().__init__()
        precision.check_setting(backbone_autocast)
        if channels_last:
            # The weights too: a 1-channel image is as much NCHW as NHWC, and a convolution
            # follows its input's or its weight's format, so with plain weights every layer
            # fell back to NCHW (and to a max-pool ~15x slower than the channels-last one).
            backbone = backbone.to(memory_format=torch.channels_last)
        self.backbone = backbone
        self.input_shape = tuple(input_shape)
        self.feature_dim = feature_dim(backbone, self.input_shape)
        self.latent_dim = latent_dim
        self.decoder = build_decoder(decoder, latent_dim, self.feature_dim, decoder_experts)
        # Learned per-dimension rates (alpha, eta); scalar or fixed rates are a known mistake.
        # With per_step_rates one row per step: alpha [S, d], eta [T, F].
        self.per_step_rates = per_step_rates
        self.inner_lr = nn.Parameter(
            initial_rates(inner_lr, latent_dim, inner_steps if per_step_rates else None)
        )
        self.finetune_lr = nn.Parameter(
            initial_rates(finetune_lr, self.feature_dim, finetune_steps if per_step_rates else None)
        )
        self.inner_steps, self.finetune_steps = inner_steps, finetune_steps
        self.first_order = first_order
        self.dropout = FeatureDropout(dropout)
        self.channels_last = channels_last
        self.backbone_autocast = backbone_autocast
        # Resolved for the device the backbone first runs on (LEOModule.setup does it for a
        # Trainer, the same on every rank); `auto` can only be decided there.
        self.precision: precision.BackbonePrecision | None = None
        self.deterministic = deterministic
        self.latent_step_bound = latent_step_bound
        if compile_inner_loops not in COMPILE_MODES:
            raise ValueError(
                f"model.compile_inner_loops={compile_inner_loops!r}: must be "
                f"{COMPILE_MODES_EXPECTED}"
            )
        self.compile_inner_loops = compile_inner_loops

    @property
    def sampling(self) -> bool:
        """Latents and weights are sampled in meta-training only, unless `deterministic` (the
        paper's "deterministic latents" ablation)."""
        return self.training and not self.deterministic

    # -- features and classifier ------------------------------------------------------------------

    def features(
        self,
        x: Tensor,
        backbone: Callable[[Tensor], Tensor] | None = None,
        normalize: bool = True,
        autocast: bool = True,
    ) -> Tensor:
        """[..., *input_shape] (uint8 images or float features) -> unit-norm [..., F], float32.

        All examples go through the backbone as one batch, so in training BatchNorm normalises
        over the whole meta-batch. Unit norm keeps the summed inner loss on the scale that the
        original's rates (alpha init 1.0) were tuned for; raw Conv4 features diverge.
        `backbone` replaces the shared one (per-task strategies bring their own weights);
        `normalize=False` keeps the raw features (the baselines that are defined on them).
        `autocast=False` runs the backbone in fp32 whatever its precision: adaptation steps
        through the backbone compute in fp32 unless their strategy chooses the backbone's
        (`strategy.adaptation_precision`), so that every strategy adapts in one precision.
        """
        own_backbone = backbone is None
        backbone = backbone or self.backbone
        lead = x.shape[: x.ndim - len(self.input_shape)]
        x = x.reshape(-1, *self.input_shape)
        x = as_float(x)
        if self.channels_last and own_backbone and x.ndim == 4:  # vmap knows no channels-last
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = self.resolve_precision(x.device).dtype if autocast else None
        with precision.autocast(x.device, dtype):
            out = backbone(x)
        out = F.normalize(out.float(), dim=-1) if normalize else out.float()
        return out.reshape(*lead, -1)

    def resolve_precision(self, device: torch.device) -> precision.BackbonePrecision:
        """The backbone's precision on `device`, decided once (see models/precision.py)."""
        if self.precision is None:
            self.precision = precision.resolve(
                self.backbone_autocast, device, self.backbone, self.input_shape, self.channels_last
            )
            log.info(self.precision.describe())
        return self.precision

    def decode(self, latents: Tensor) -> Tensor:
        """Class codes [B, N, d] -> classifier weights [B, N, F]; sampled only in training."""
        n_way = latents.shape[-2]
        params = self.decoder(latents)
        offset = weight_std_offset(self.feature_dim, n_way)
        return draw_gaussian(params, self.sampling, offset)

    def logits(self, features: Tensor, weights: Tensor) -> Tensor:
        """Dot-product classifier: [B, M, F] x [B, N, F] -> [B, M, N], no bias, no norm."""
        return self.dropout(features) @ weights.transpose(1, 2)

    # -- adaptation --------------------------------------------------------------------------

    def adapt_latents(
        self, latents: Tensor, features: Tensor, labels: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """z <- z - (alpha / K) * grad_z L_support, `inner_steps` times (alpha_t at step t with
        per-step rates).

        The original keeps K tiled copies of each class code and averages their logits, so each
        copy receives 1/K of the gradient; one code per class with the rate divided by K is the
        same update at evaluation (in meta-training the original samples weights per copy). With
        unequal shots K is the mean shot count and L_support weights every class equally
        (`shot_weights`). Returns the adapted codes and the per-task support loss at each step.

        grad_z is the support gradient w.r.t. the sampled weights (`support_gradient`) carried
        back through the sampling (`draw_gaussian_vjp`) and the decoder (`decoder.vjp`).
        """
        steps = self.inner_steps
        rate = self._rates("inner_lr", "inner_steps")
        n_tasks, n_way = latents.shape[:2]
        offset = weight_std_offset(self.feature_dim, n_way)
        noise = (  # eps of every step's sampled weights, one draw: [S, B, N, F]
            torch.randn(steps, n_tasks, n_way, self.feature_dim, device=latents.device)
            if self.sampling and steps
            else None
        )

        def gradient(z: Tensor, step: int, inputs: Tensor, targets: SupportTargets):
            params = self.decoder(z)  # [B, N, 2F]
            eps = None if noise is None else noise[step]
            weights = draw_gaussian(params, eps is not None, offset, eps)
            loss, grad_weights = support_gradient(inputs, targets, weights)
            grad_params = draw_gaussian_vjp(params, eps, offset, grad_weights)
            return loss, self.decoder.vjp(z, grad_params)

        return self._descend(
            latents, gradient, rate, steps, features, labels, bound=self.latent_step_bound
        )

    def finetune(
        self, weights: Tensor, features: Tensor, labels: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """w <- w - (eta / K) * grad_w L_support, `finetune_steps` times (same 1/K reasoning)."""

        def gradient(w: Tensor, step: int, inputs: Tensor, targets: SupportTargets):
            return support_gradient(inputs, targets, w)

        rate = self._rates("finetune_lr", "finetune_steps")
        return self._descend(
            weights, gradient, rate, self.finetune_steps, features, labels, bound=None
        )

    def _descend(self, state, gradient, rate, steps, features, labels, bound):
        """`steps` steps state <- state - (rate / K) * gradient, each on the support features
        under a fresh dropout mask (all drawn at once); with a `bound`, each row's change in
        one step is scaled down to that norm where it is longer (model.latent_step_bound).

        The gradients are differentiable tensor ops, so meta-training differentiates through
        the steps (second order) with one backward pass and no autograd call per step; with
        `first_order` they are detached. At evaluation nothing is differentiated: the steps run
        without a graph."""
        targets = SupportTargets.of(labels, state.shape[-2], features.dtype)
        masks = self.dropout.masks((steps, *features.shape), features)  # [S, B, M, F] or None
        keep_graph = self.training and not self.first_order
        run = (
            LEONet._steps
            if self.compile_inner_loops is None
            else compiled_steps(self.compile_inner_loops)
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.training):
            state, losses = run(
                self, state, gradient, rate, steps, features, targets, masks, keep_graph, bound
            )
        return state, [loss / labels.shape[0] for loss in losses]

    def _steps(self, state, gradient, rate, steps, features, targets, masks, keep_graph, bound):
        """The steps themselves, given every random number: a function of tensors only, which
        model.compile_inner_loops hands to torch.compile (no autograd call inside, so
        meta-training differentiates the compiled graph once)."""
        losses = []
        for step in range(steps):
            inputs = features if masks is None else features * masks[step]
            loss, grad = gradient(state, step, inputs, targets)
            grad = grad if keep_graph else grad.detach()
            step_rate = rate[step] if rate.ndim == 2 else rate  # [d] or [F]
            change = (step_rate / targets.mean_shots) * grad  # [B, N, d] or [B, N, F]
            if bound is not None:  # min(1, bound / |change|) per row, differentiable
                change = change * (bound / change.norm(dim=-1, keepdim=True).clamp_min(bound))
            state = state - change
            losses.append(loss)
        return state, losses

    def _rates(self, name: str, steps_key: str) -> Tensor:
        """The rate parameter `name`, checked against the number of steps it is used for:
        per-step rates [S, size] serve exactly S steps (the count they were learned with)."""
        rate, steps = getattr(self, name), getattr(self, steps_key)
        if rate.ndim == 2 and rate.shape[0] != steps:
            raise ValueError(
                f"model.{steps_key}={steps}: this model learned "
                f"{describe_rates(tuple(rate.shape), steps_key)}, one rate vector per step; "
                f"run it with model.{steps_key}={rate.shape[0]}"
            )
        return rate

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Rates learned for another number of steps, or with(out) per-step rates, are refused
        naming the keys, instead of torch's bare size mismatch (other size differences, such
        as another latent_dim, keep torch's message)."""
        for name, steps_key in (("inner_lr", "inner_steps"), ("finetune_lr", "finetune_steps")):
            saved = state_dict.get(prefix + name)
            if saved is None:
                continue
            saved, own = tuple(saved.shape), tuple(getattr(self, name).shape)
            if len(saved) != len(own) or (len(own) == 2 and saved[0] != own[0]):
                raise CheckpointError(
                    f"{prefix}{name}: the checkpoint holds {describe_rates(saved, steps_key)} "
                    f"{saved}, this model has {describe_rates(own, steps_key)} {own}; build it "
                    f"with the checkpoint's model.{steps_key} and model.per_step_rates"
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@functools.cache
def compiled_steps(mode: str) -> Callable:
    """LEONet._steps compiled with torch.compile(mode=mode), once per process and mode (its
    graphs are cached per model and shape; Inductor also caches them on disk across runs).
    On this project's 2-core CPU it made the paper's feature-space step 6-12 % faster; a GPU's
    gain, where reduce-overhead adds CUDA graphs, is unmeasured (BENCHMARKS.md)."""
    return torch.compile(LEONet._steps, mode=mode)
