"""What a strategy declares about itself, so that nothing else has to know it by name.

Each strategy class carries a `spec`: its option name (`strategy=<name>`), its own settings
(`strategy.<key>`, each with its default, its rule and a line of help), how it reads the
shared step counts (`model.inner_steps`, `model.finetune_steps`), what it fits per task and
what it meta-learns, which of LEO's optional switches it uses and why the others have no
effect, and whether `leo-eval` may score it in another BatchNorm mode. The config checks, the
settings' schema, the HParams keys, `--help` and the error messages are all derived from these
declarations: a new strategy is one module (its class and spec) and one YAML file
(conf/strategy/<name>.yaml, or in a config folder of your own), and nothing else names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leo_lightning.models.switches import SWITCHES


@dataclass(frozen=True)
class Setting:
    """One `strategy.<key>`: its default, the rule its value must follow, and what it does."""

    default: Any
    help: str
    choices: tuple[Any, ...] = ()  # the values it may take (else `check`)
    check: Callable[[Any], bool] | None = None
    expected: str = ""  # `check` in words, e.g. "> 0"
    # What a checkpoint written before this setting existed was trained with, where that is not
    # `default` (None: it is the default); such a checkpoint keeps computing as it did
    before: Any = None

    def problem(self, key: str, value: Any) -> str | None:
        """The message for a value that breaks the rule, or None."""
        if self.choices and value not in self.choices:
            return f"strategy.{key}={value!r}: must be one of {', '.join(map(str, self.choices))}"
        if self.check is not None and not self.check(value):
            return f"strategy.{key}={value!r}: must be {self.expected}"
        return None


@dataclass(frozen=True)
class Steps:
    """How a strategy reads the step counts `model.inner_steps` and `model.finetune_steps`.

    `inner`: what an inner step is for it ("latent steps", "SGD steps", ...), or None if it
    takes no steps at all (both counts must then be 0). `finetune`: whether it has LEO's
    fine-tuning phase (else model.finetune_steps must be 0). `min_inner` with `why_min`: the
    fewest inner steps that make sense, and why."""

    inner: str | None
    finetune: bool = False
    min_inner: int = 0
    why_min: str = ""


@dataclass(frozen=True)
class MovedKey:
    """A key a strategy once read under another name. `old` and `new` are dotted config keys
    (`model.inner_steps` -> `strategy.sgd_steps`); `unset` is the value `old` holds when nobody
    set it (what the strategy's YAML puts there, or None for an old `strategy.*` key)."""

    old: str
    new: str
    unset: Any = None


def move_keys(spec: StrategySpec, tree: Any, over_new: bool = True) -> list[str]:
    """Move the values set under `spec`'s old key names to their new keys, in place, and say so
    (one line each). `tree` is a run config or a checkpoint's hyper-parameters, any mapping
    with `model` and `strategy` mappings (a DictConfig must be writable: open_dict). Old
    `strategy.*` keys are removed; old `model.*` keys are set back to their `unset` value.
    `over_new`: a value under the old name wins over one already under the new name (a
    composed config, whose schema fills every new key with its default); else the new key's
    value stays (a checkpoint that has the new key was written with it)."""
    notes = []
    for moved in spec.moved:
        old_group, old_key = moved.old.split(".", 1)
        new_group, new_key = moved.new.split(".", 1)
        source, target = tree.get(old_group), tree.get(new_group)
        if source is None or target is None or old_key not in source:
            continue
        value = source[old_key]
        if old_group == "strategy":  # rebuilt without it (a structured config cannot delete)
            tree[old_group] = {k: v for k, v in source.items() if k != old_key}
        else:
            source[old_key] = moved.unset
        target = tree[new_group]
        if value is None or value == moved.unset or (new_key in target and not over_new):
            continue
        declared = spec.settings.get(new_key) if new_group == "strategy" else None
        if declared is not None and isinstance(declared.default, float) and type(value) is int:
            value = float(value)  # as the schema would have typed it under its new name
        target[new_key] = value
        notes.append(
            f"{moved.old}={value} is {moved.new} with strategy={spec.name}: using "
            f"{moved.new}={value} (the old name still works)"
        )
    return notes


def add_settings_it_lacked(spec: StrategySpec, stored: Mapping[str, Any]) -> tuple[dict, list]:
    """A strategy config stored in a checkpoint older than some of its settings, with each
    missing one at the value that checkpoint was trained with (`Setting.before`), and a line
    saying so for each; a newer checkpoint comes back as it is."""
    stored = dict(stored)
    notes = []
    for key, setting in spec.settings.items():
        if key not in stored and setting.before is not None:
            stored[key] = setting.before
            notes.append(
                f"strategy.{key}: not in this checkpoint, which predates it; using "
                f"{setting.before!r}, what it was trained with (the default is now "
                f"{setting.default!r})"
            )
    return stored, notes


LATENT_STEPS = Steps("latent steps", finetune=True)
NO_STEPS = Steps(None)


@dataclass(frozen=True)
class StrategySpec:
    """Everything the framework needs to know of a strategy without building it."""

    name: str  # its option: strategy=<name>, conf/strategy/<name>.yaml
    summary: str  # one line, for --help
    steps: Steps
    # What each task fits on its support set, and what meta-training learns across tasks, a
    # phrase each, for --help: what separates the strategies of a comparison. Every built-in
    # strategy states both (tests/test_feature_baselines.py); empty is allowed only so that a
    # strategy of one's own written before these existed still builds.
    fitted_per_task: str = ""
    meta_learned: str = ""
    settings: Mapping[str, Setting] = field(default_factory=dict)
    switches: frozenset[str] = frozenset()  # the optional model switches it uses
    why_not: str = ""  # why the other switches have no effect on it
    # None: leo-eval may score it with either BatchNorm mode (batch_norm=running|batch), since
    # the mode only changes evaluation; else why its mode stays the one it was trained with.
    fixed_batch_norm: str | None = None
    # The name it goes by with strategy.first_order=true, where that is a method of its own
    first_order_name: str | None = None
    # Keys it once read under other names (MovedKey): the old spelling still works
    moved: tuple[MovedKey, ...] = ()

    def defaults(self) -> dict[str, Any]:
        return {key: setting.default for key, setting in self.settings.items()}

    def display_name(self, settings: Any = None) -> str:
        """Its name, or its first-order name where `settings` (its own) ask for first order."""
        if self.first_order_name and _get(settings, "first_order", False):
            return f"{self.first_order_name} ({self.name} with strategy.first_order=true)"
        return self.name

    def setting_problems(self, settings: Mapping[str, Any]) -> list[str]:
        """Unknown keys and values that break their rule, each named."""
        problems = []
        for key, value in settings.items():
            if key.startswith("_") or f"strategy.{key}" in {m.old for m in self.moved}:
                continue  # _target_, _partial_, ...; an old name (validate moves its value)
            if key not in self.settings:
                known = ", ".join(sorted(self.settings)) or "none"
                problems.append(
                    f"strategy.{key}: not a setting of strategy={self.name} (its settings: {known})"
                )
            elif value is not None and (problem := self.settings[key].problem(key, value)):
                problems.append(f"{problem} with strategy={self.name}")
        return problems

    def step_problems(self, model: Any) -> list[str]:
        """Step counts this strategy would silently ignore, or that leave it at chance."""
        inner = _get(model, "inner_steps", 0)
        finetune = _get(model, "finetune_steps", 0)
        if self.steps.inner is None:
            return [
                f"model.{key}={value}: must be 0 with strategy={self.name}, which takes none "
                "of LEO's latent or fine-tuning steps (strategy=amortized takes them)"
                for key, value in (("inner_steps", inner), ("finetune_steps", finetune))
                if value
            ]
        problems = []
        if 0 <= inner < self.steps.min_inner:
            problems.append(
                f"model.inner_steps={inner}: must be >= {self.steps.min_inner} with "
                f"strategy={self.name} ({self.steps.why_min})"
            )
        if finetune and not self.steps.finetune:
            problems.append(
                f"model.finetune_steps={finetune}: must be 0 with strategy={self.name}, which "
                f"has no fine-tuning phase (its {self.steps.inner} are model.inner_steps)"
            )
        return problems

    def switch_problems(self, model: Any, settings: Any = None) -> list[str]:
        """Switches set away from LEO's default where they would have no effect: with this
        strategy, `decoder_experts` without `decoder=mixture`, per-step rates without a single
        step. `model`: the model's settings (a config node or a mapping), missing keys at
        their defaults; `settings`: the strategy's own, for its name."""
        values = {key: _get(model, key, default) for key, default in SWITCHES.items()}
        on = [key for key, default in SWITCHES.items() if values[key] != default]
        name = self.display_name(settings)
        problems = [
            f"model.{key}={values[key]!r}: has no effect with strategy={name} "
            f"({self.why_not}); leave it at {SWITCHES[key]!r}"
            for key in on
            if key not in self.switches
        ]
        used = [key for key in on if key in self.switches]
        if "decoder_experts" in used and values["decoder"] != "mixture":
            problems.append(
                f"model.decoder_experts={values['decoder_experts']}: only used with "
                f"model.decoder=mixture (model.decoder={values['decoder']!r})"
            )
        steps = _get(model, "inner_steps", 0) or _get(model, "finetune_steps", 0)
        if "per_step_rates" in used and not steps:
            problems.append(
                "model.per_step_rates=True: has no effect with model.inner_steps=0 and "
                "model.finetune_steps=0 (there is no step to give a rate)"
            )
        return problems


def _get(node: Any, key: str, default: Any) -> Any:
    value = node.get(key, default) if node is not None else default
    return default if value is None else value
