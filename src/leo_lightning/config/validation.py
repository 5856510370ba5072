"""Value rules for a composed config, checked before any data is prepared or any step is run.

Types and key names are the schemas' job (config.py); this module checks what a type cannot
say: ranges and the rules that tie keys together. Every problem is reported, not just the first.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import InterpolationValidationError

from leo_lightning.data.augment import affine_problems
from leo_lightning.errors import ConfigError
from leo_lightning.models.leo import COMPILE_MODES, COMPILE_MODES_EXPECTED, DECODERS
from leo_lightning.models.precision import CHOICES as PRECISION_CHOICES
from leo_lightning.models.relation_rounds import RELATIONS
from leo_lightning.models.switches import SWITCHES
from leo_lightning.strategies.base import LATENT_BATCH_NORM_MODES
from leo_lightning.strategies.catalog import strategy_class
from leo_lightning.strategies.spec import move_keys
from leo_lightning.training.schedules import SCHEDULES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    key: str
    check: Callable[[Any], bool]
    expected: str


def _at_least(n: int) -> Callable[[Any], bool]:
    return lambda v: v >= n


def _positive(v: Any) -> bool:
    return v > 0


# Meta-training keeps every inner step's graph for the second-order meta-gradient, so memory
# grows with the step count and a typo (100000) filled the machine before a single step was done.
# The paper takes 5 steps (per_task's Adam steps are its own strategy.adam_steps).
MAX_STEPS = 1000
STEPS_EXPECTED = (
    f">= 0 and <= {MAX_STEPS} (each step's graph is kept for the meta-gradient, so memory grows "
    "with the steps; the paper takes 5)"
)


def _steps(v: Any) -> bool:
    return 0 <= v <= MAX_STEPS


RULES = (
    Rule("data.n_way", _at_least(2), ">= 2"),
    Rule("data.k_shot", _at_least(1), ">= 1"),
    Rule("data.n_query", _at_least(1), ">= 1"),
    Rule("data.meta_batch_size", _at_least(1), ">= 1"),
    Rule("data.eval_batch_size", _at_least(1), ">= 1"),
    Rule("data.val_episodes", _at_least(1), ">= 1"),
    Rule("data.test_episodes", _at_least(1), ">= 1"),
    Rule("data.num_workers", _at_least(0), ">= 0"),
    Rule("model.latent_dim", _at_least(1), ">= 1"),
    Rule("model.inner_steps", _steps, STEPS_EXPECTED),
    Rule("model.finetune_steps", _steps, STEPS_EXPECTED),
    Rule("model.inner_lr", _positive, "> 0"),
    Rule("model.finetune_lr", _positive, "> 0"),
    Rule("model.lr", _positive, "> 0"),
    Rule("model.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    Rule("model.kl_weight", _at_least(0), ">= 0"),
    Rule("model.encoder_penalty_weight", _at_least(0), ">= 0"),
    Rule("model.l2_weight", _at_least(0), ">= 0"),
    Rule("model.orthogonality_weight", _at_least(0), ">= 0"),
    Rule("model.grad_clip_value", _positive, "> 0"),
    Rule("model.grad_clip_norm", _positive, "> 0"),
    Rule("model.max_consecutive_skips", _at_least(1), ">= 1"),
    Rule("model.compile_inner_loops", lambda v: v in COMPILE_MODES, COMPILE_MODES_EXPECTED),
    Rule("model.lr_schedule", lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
    Rule("model.warmup_steps", _at_least(0), ">= 0"),
    Rule(
        "model.backbone_autocast",
        lambda v: v in PRECISION_CHOICES,
        f"one of {list(PRECISION_CHOICES)} or null (fp32)",
    ),
    Rule("model.relation", lambda v: v in RELATIONS, f"one of {', '.join(RELATIONS)}"),
    Rule("model.relation_rounds", _at_least(1), ">= 1"),
    Rule("model.decoder", lambda v: v in DECODERS, f"one of {', '.join(DECODERS)}"),
    Rule("model.decoder_experts", _at_least(2), ">= 2"),
    Rule("model.latent_step_bound", lambda v: v is None or _positive(v), "null or > 0"),
    Rule("pretrain.batch_size", _at_least(1), ">= 1"),
    Rule("pretrain.lr", _positive, "> 0"),
    Rule("pretrain.momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    Rule("pretrain.weight_decay", _at_least(0), ">= 0"),
    Rule("pretrain.warmup_steps", _at_least(0), ">= 0"),
    Rule("pretrain.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
    Rule("pretrain.rotation_weight", _at_least(0), ">= 0"),
    Rule(
        "pretrain.backbone_autocast",
        lambda v: v in PRECISION_CHOICES,
        f"one of {list(PRECISION_CHOICES)} or null (fp32)",
    ),
    Rule("views", _at_least(1), ">= 1"),  # leo-embed
    Rule("batch_size", _at_least(1), ">= 1"),  # leo-embed
    Rule("trainer.max_steps", lambda v: v >= 1 or v == -1, ">= 1 (or -1 for no limit)"),
    Rule("callbacks.last_checkpoint.every_n_steps", _at_least(1), ">= 1 (or null)"),
    Rule("callbacks.last_checkpoint.every_seconds", _at_least(0), ">= 0 (or null)"),
    Rule(  # scripts/eval.py: test a LEO-strategy checkpoint in the other mode
        "batch_norm",
        lambda v: v in LATENT_BATCH_NORM_MODES,
        f"one of {', '.join(LATENT_BATCH_NORM_MODES)} (or null)",
    ),
)


def config_problems(cfg: DictConfig) -> list[str]:
    """Every broken rule, one message each naming the key, the value and the rule."""
    problems = []
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=None)
        if _is_non_finite(value):
            continue  # said once, by _non_finite_problems
        if value is not None and not rule.check(value):
            problems.append(f"{rule.key}={value!r}: must be {rule.expected}")
    problems += _non_finite_problems(cfg)
    problems += _image_size_problems(cfg)
    problems += _input_shape_problems(cfg)
    problems += _strategy_problems(cfg)
    problems += _schedule_problems(cfg)
    problems += _split_capacity_problems(cfg)
    problems += _augment_problems(cfg)
    problems += _within_alphabet_problems(cfg)
    return problems


def validate(cfg: DictConfig) -> None:
    """Move the old spellings of the chosen strategy's settings to their keys (a line each on
    stderr, through the log), then refuse the config if any rule is broken."""
    move_old_keys(cfg)
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(problems)


def move_old_keys(cfg: DictConfig) -> None:
    """A strategy's settings that moved (spec.MovedKey: MAML's steps, rate and order were
    `model.inner_steps`, `strategy.inner_lr`, `model.first_order` in 0.2.0) keep working under
    their old names: the value goes to the new key, and a line says so."""
    target = OmegaConf.select(cfg, "strategy._target_", default=None)
    if not target:
        return
    try:
        spec = strategy_class(str(target)).spec
    except ValueError:
        return  # said by _strategy_problems
    if not spec.moved:
        return
    with read_write(cfg), open_dict(cfg):
        for note in move_keys(spec, cfg):
            log.warning(note)


def _non_finite_problems(cfg: DictConfig) -> list[str]:
    """No float setting means anything as inf or nan, and the range rules let them through
    (`inf > 0` is true): model.lr=inf turns the weights to NaN in one update. So every float
    value of the config, wherever it is, must be finite."""
    return [
        f"{key}={value!r}: must be a finite number"
        for key, value in _float_values(cfg)
        if _is_non_finite(value)
    ]


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _float_values(cfg: DictConfig) -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every float in the config, lists included, in config order."""
    yield from _floats_under(cfg, OmegaConf.to_container(cfg, resolve=False), "")


def _floats_under(cfg: DictConfig, node: Any, prefix: str) -> Iterator[tuple[str, float]]:
    """An interpolation is resolved where it can be; one that cannot be resolved yet (e.g.
    ${hydra:...} before the run starts) is not a float setting of ours and is skipped."""
    for name, value in node.items() if isinstance(node, dict) else enumerate(node):
        key = f"{prefix}{name}"
        if isinstance(value, dict | list):
            yield from _floats_under(cfg, value, f"{key}.")
            continue
        if isinstance(value, str) and "${" in value:
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if isinstance(value, float):
            yield key, value


def _image_size_problems(cfg: DictConfig) -> list[str]:
    """A Conv4 halves the image depth times, a ResNet12 once per stage (one per width); below
    2**depth pixels nothing is left to pool."""
    size = OmegaConf.select(cfg, "data.image_size", default=None)
    backbone = OmegaConf.select(cfg, "model.backbone._target_", default="") or ""
    if size is None:
        return []
    if backbone.endswith("Conv4"):
        depth = OmegaConf.select(cfg, "model.backbone.depth", default=4)
        what = f"a Conv4 of depth {depth}"
    elif backbone.endswith("ResNet12"):
        depth = len(OmegaConf.select(cfg, "model.backbone.widths", default=[0] * 4))
        what = f"a ResNet12 of {depth} stages (model.backbone.widths)"
    else:
        return []
    minimum = 2**depth
    if size < minimum:
        return [f"data.image_size={size}: must be >= {minimum} for {what}"]
    return []


def _input_shape_problems(cfg: DictConfig) -> list[str]:
    """model.input_shape must be the shape of one example: [data.channels, data.image_size,
    data.image_size] for images (its default follows them). Pre-computed features have no
    image size: their shape is checked against the loaded data by the DataModule."""
    shape = OmegaConf.select(cfg, "model.input_shape", default=None)
    if shape is None:
        return []
    try:
        shape = list(shape)
    except InterpolationValidationError:  # its default, [${data.channels}, ...], with nulls
        return [
            "model.input_shape: must be set to the shape of one example here (its default "
            "follows data.channels and data.image_size, which are null: pre-computed "
            "features?), e.g. model.input_shape=[640] for the LEO embeddings"
        ]
    size = OmegaConf.select(cfg, "data.image_size", default=None)
    channels = OmegaConf.select(cfg, "data.channels", default=None)
    if size is None or channels is None or shape == [channels, size, size]:
        return []
    return [
        f"model.input_shape={shape}: does not match the images, [{channels}, {size}, {size}] "
        f"(data.channels={channels}, data.image_size={size}); leave model.input_shape at its "
        "default, which follows them"
    ]


def _strategy_problems(cfg: DictConfig) -> list[str]:
    """What the chosen strategy declares it reads (strategies/spec.py): its own settings, the
    step counts and the optional switches. A value out of range is reported once, by its rule,
    not again as a switch that is on."""
    target = OmegaConf.select(cfg, "strategy._target_", default=None)
    model = OmegaConf.select(cfg, "model", default=None)
    if not target:
        return []
    try:
        spec = strategy_class(str(target)).spec
    except ValueError as error:
        return [str(error)]
    settings = OmegaConf.to_container(cfg.strategy, resolve=True)
    problems = spec.setting_problems(settings)
    if model is None:  # an eval config: the checkpoint's model
        return problems
    rules = {rule.key: rule for rule in RULES}
    invalid = tuple(
        f"{rule.key}="
        for key, default in SWITCHES.items()
        if (rule := rules.get(f"model.{key}")) and not rule.check(model.get(key, default))
    )
    invalid += tuple(
        f"{key}="
        for key in ("model.inner_steps", "model.finetune_steps")
        if not rules[key].check(OmegaConf.select(cfg, key, default=0) or 0)
    )
    switch_and_steps = spec.step_problems(model) + spec.switch_problems(model, cfg.strategy)
    return problems + [p for p in switch_and_steps if not p.startswith(invalid)]


def _schedule_problems(cfg: DictConfig) -> list[str]:
    """A cosine schedule is as long as the run, so the run needs a length in steps: training's
    with model.lr_schedule=cosine, pretraining's always (its rate is a cosine)."""
    if OmegaConf.select(cfg, "pretrain", default=None) is not None:
        schedule, warmup_key = "the pretraining's cosine rate", "pretrain.warmup_steps"
    elif OmegaConf.select(cfg, "model.lr_schedule", default=None) == "cosine":
        schedule, warmup_key = "model.lr_schedule=cosine", "model.warmup_steps"
    else:
        return []
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=None)
    warmup = OmegaConf.select(cfg, warmup_key, default=0) or 0
    if max_steps is None or max_steps < 1:
        return [
            f"trainer.max_steps={max_steps}: must be >= 1 with {schedule}, whose curve ends at "
            "trainer.max_steps (with a trainer.max_time budget, set trainer.max_steps to the "
            "steps that fit it)"
        ]
    if warmup >= max_steps:
        return [f"{warmup_key}={warmup}: must be < trainer.max_steps={max_steps} with {schedule}"]
    return []


def _split_capacity_problems(cfg: DictConfig) -> list[str]:
    """Sources that declare their sizes in the config (glyphs) are checked before rendering;
    the others are checked against the loaded data by the DataModule."""
    source = OmegaConf.select(cfg, "data.source", default=None)
    n_way = OmegaConf.select(cfg, "data.n_way", default=None)
    needed = (OmegaConf.select(cfg, "data.k_shot", default=0) or 0) + (
        OmegaConf.select(cfg, "data.n_query", default=0) or 0
    )
    if source is None or n_way is None:
        return []
    problems = []
    per_class = source.get("examples_per_class")
    if per_class is not None and per_class < needed:
        problems.append(
            f"data.source.examples_per_class={per_class}: must be >= data.k_shot + data.n_query "
            f"= {needed}"
        )
    for split in ("train", "val", "test"):
        classes = source.get(f"{split}_classes")
        if classes is not None and classes < n_way:
            problems.append(
                f"data.source.{split}_classes={classes}: must be >= data.n_way = {n_way}"
            )
    return problems


AFFINE_KEYS = ("degrees", "shear", "scale", "translate", "p", "fill")


def _augment_problems(cfg: DictConfig) -> list[str]:
    """data/augment=affine: its ranges (one rule set, data/augment.py's), and images to act on."""
    target = str(OmegaConf.select(cfg, "data.augment._target_", default="") or "")
    if not target.endswith(".RandomAffine"):
        return []
    values = {key: OmegaConf.select(cfg, f"data.augment.{key}") for key in AFFINE_KEYS}
    non_finite = {  # said once, by _non_finite_problems
        f"data.augment.{key}"
        for key, value in values.items()
        if any(_is_non_finite(v) for v in (value if OmegaConf.is_list(value) else [value]))
    }
    problems = [
        problem
        for problem in affine_problems(**values)
        if problem.split("=", 1)[0] not in non_finite
    ]
    if OmegaConf.select(cfg, "data.image_size", default=None) is None:
        problems.append(
            "data.augment: data/augment=affine distorts images, but data.image_size is null "
            "(pre-computed features); use data/augment=none"
        )
    return problems


def _within_alphabet_problems(cfg: DictConfig) -> list[str]:
    """Episodes within one alphabet need a source that groups its classes by alphabet. An
    eval config (no `model`) tests a checkpoint with the checkpoint's own data source, not the
    composed one (cli/eval.py); the DataModule checks that source's groups when it loads."""
    if not OmegaConf.select(cfg, "data.within_alphabet", default=False) or "model" not in cfg:
        return []
    source = str(OmegaConf.select(cfg, "data.source._target_", default="") or "")
    if source.endswith(GROUPED_SOURCES):
        return []
    return [
        "data.within_alphabet=true: needs classes grouped by alphabet, which only data=omniglot "
        "and data=embeddings of it have (data.source is "
        f"{source.rsplit('.', 1)[-1] or 'not set'})"
    ]


# The sources whose classes can be grouped by alphabet: Omniglot, and leo-embed's features,
# which keep the groups of the data they were computed from (the DataModule checks they do)
GROUPED_SOURCES = (".OmniglotSource", ".EmbeddingSource")


class ValidateOnRunStart(Callback):
    """Checks a single run's config before Hydra creates its run directory, so a mistake
    leaves nothing behind. (A multirun job is checked by scripts/train.py instead: there a bad
    value fails that job only, and the sweep goes on.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except ConfigError as error:
            print(error, file=sys.stderr)
            sys.exit(2)
