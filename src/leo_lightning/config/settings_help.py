"""The settings' part of `--help`, written from where each is declared: the model's settings
(training/settings.py) and each strategy with its own (its spec), with defaults and rules."""

from __future__ import annotations

import textwrap

from omegaconf import OmegaConf

from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.settings import help_lines

RESOLVER = "leo_strategies"  # ${leo_strategies:} in conf/hydra/default.yaml's help footer
MODEL_RESOLVER = "leo_model_settings"  # ${leo_model_settings:}


def model_settings_help(width: int = 100) -> str:
    lines = []
    for key, default, text in help_lines():
        lines += textwrap.wrap(
            f"model.{key} (default {default!r}): {text}",
            width,
            initial_indent="    ",
            subsequent_indent="      ",
        )
    return "\n".join(lines)


def strategies_help(width: int = 100) -> str:
    lines = []
    for strategy in built_in():
        spec = strategy.spec
        lines.append(f"{spec.name}: {spec.summary}")
        for key, setting in spec.settings.items():
            rule = f"one of {', '.join(map(str, setting.choices))}" if setting.choices else ""
            rule = rule or setting.expected
            text = f"strategy.{key} (default {setting.default!r}{'; ' + rule if rule else ''}): "
            lines += textwrap.wrap(
                text + setting.help, width, initial_indent="    ", subsequent_indent="      "
            )
    return "\n".join(lines)


def register_help_resolver() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, strategies_help)
    if not OmegaConf.has_resolver(MODEL_RESOLVER):
        OmegaConf.register_new_resolver(MODEL_RESOLVER, model_settings_help)
