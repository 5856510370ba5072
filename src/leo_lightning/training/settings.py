"""The model's settings, `model.<key>`, each declared once: its default and what it does.

`LEOModule` takes them as keyword arguments and fills the rest from here; the config schema
(`config/schemas.py`, LEOSchema) is this class plus the parts a config passes in (backbone,
input shape), so conf/model/leo.yaml restates no value; `leo-train --help` lists them all. Loss
weights and rates follow the paper's notation: beta (kl_weight), gamma (encoder_penalty_weight),
lambda1 (l2_weight), lambda2 (orthogonality_weight), alpha (inner_lr), eta (finetune_lr).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from leo_lightning.declared import Declared, setting
from leo_lightning.models.precision import AUTO
from leo_lightning.models.switches import SWITCHES

# OmegaConf needs typing.Optional, not `X | None`, in dataclass annotations on Python 3.10.
# ruff: noqa: UP045


@dataclass
class LEOSettings(Declared):
    PREFIX = "model"

    latent_dim: int = setting(64, "d, the size of a class's latent code")
    inner_steps: int = setting(5, "latent-space adaptation steps per task")
    inner_lr: float = setting(1.0, "initial value of the learned per-dimension latent rate alpha")
    finetune_steps: int = setting(5, "parameter-space fine-tuning steps on the decoded weights")
    finetune_lr: float = setting(1e-3, "initial value of the learned per-feature rate eta")
    first_order: bool = setting(False, "true: do not differentiate through inner gradients")
    dropout: float = setting(0.3, "on features, before the encoder and the classifier")
    kl_weight: float = setting(0.01, "beta, the weight of the latent KL term")
    encoder_penalty_weight: float = setting(1e-5, "gamma, pulls z0 towards the adapted code")
    l2_weight: float = setting(1e-8, "lambda1, on encoder, relation and decoder weights")
    orthogonality_weight: float = setting(1e-3, "lambda2, on the decoder's d x d cosine matrix")
    lr: float = setting(1e-3, "outer-loop Adam learning rate (the peak of a schedule)")
    lr_schedule: str = setting(
        "constant",
        "the outer rate over training: constant, or cosine from model.lr towards 0 at "
        "trainer.max_steps (which must then be set)",
    )
    warmup_steps: int = setting(
        0, "first meta-updates with a linear ramp up to model.lr (either schedule)"
    )
    grad_clip_value: float = setting(0.1, "per-tensor clipping: each gradient value to +-this")
    grad_clip_norm: float = setting(0.1, "... then each gradient tensor's norm to this")
    max_consecutive_skips: int = setting(25, "non-finite updates in a row before training stops")
    backbone_init: Optional[str] = setting(
        None,
        "a leo-pretrain checkpoint whose backbone weights start meta-training (its "
        "architecture must be model.backbone's); null: random initialisation",
    )
    backbone_freeze: bool = setting(
        False,
        "true: the backbone is not trained (its BatchNorm keeps its running statistics); on a "
        "pretrained backbone, data=embeddings is the same model and much faster",
    )
    backbone_lr_scale: float = setting(
        1.0, "the backbone's outer rate as a multiple of model.lr (fine-tuning a pretrained one)"
    )
    channels_last: bool = setting(True, "backbone weights and input in channels-last layout")
    backbone_autocast: Optional[str] = setting(
        AUTO,
        "backbone autocast: auto (bf16 where native, else fp32), bf16, fp16 or null (fp32); "
        "the inner loop always runs in fp32",
    )
    deterministic: bool = setting(False, "true: no sampling of latents or weights (an ablation)")
    compile_inner_loops: Optional[str] = setting(
        None,
        "torch.compile the latent and fine-tuning steps: null (eager), default (Inductor) or "
        "reduce-overhead (with CUDA graphs on a GPU); the first step compiles (seconds, cached)",
    )
    # LEO's optional switches: the paper's LEO by default (models/switches.py)
    relation: str = setting(
        SWITCHES["relation"],
        "pairwise (LEO: an MLP on every pair of support codes) or attention; amortized(_pure)",
    )
    relation_rounds: int = setting(
        SWITCHES["relation_rounds"], "rounds of relational refinement; amortized(_pure)"
    )
    per_step_rates: bool = setting(
        SWITCHES["per_step_rates"],
        "true: a learned rate vector per inner step; amortized, universal",
    )
    decoder: str = setting(
        SWITCHES["decoder"],
        "linear (LEO), task_conditioned (FiLM by the task's mean code) or mixture; "
        "amortized(_pure), universal",
    )
    decoder_experts: int = setting(
        SWITCHES["decoder_experts"], "E, the decoders of model.decoder=mixture (>= 2)"
    )
    latent_step_bound: Optional[float] = setting(
        SWITCHES["latent_step_bound"],
        "the largest norm of one class code's change in one latent step (null: unbounded, the "
        "paper); keeps the steps finite when the learned rates outgrow sharp pretrained "
        "features; amortized, universal",
    )
