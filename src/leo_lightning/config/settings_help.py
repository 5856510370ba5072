"""The settings' part of `--help`, written from where each is declared: the model's
(training/settings.py), the episodes' (data/settings.py), the affine augmentation's
(data/augment.py), and each strategy with its own (its spec), with defaults and rules."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from omegaconf import OmegaConf

from leo_lightning.data.augment import AffineSettings
from leo_lightning.data.settings import EpisodeSettings
from leo_lightning.declared import help_lines
from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.settings import LEOSettings

WIDTH = 100


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent="    ", subsequent_indent="      ")


def declared_help(cls: type, prefix: str) -> str:
    lines = []
    for key, default, text in help_lines(cls):
        lines += _wrapped(f"{prefix}.{key} (default {default!r}): {text}")
    return "\n".join(lines)


def strategies_help() -> str:
    lines = []
    for strategy in built_in():
        spec = strategy.spec
        lines.append(f"{spec.name}: {spec.summary}")
        for key, setting in spec.settings.items():
            rule = f"one of {', '.join(map(str, setting.choices))}" if setting.choices else ""
            rule = rule or setting.expected
            text = f"strategy.{key} (default {setting.default!r}{'; ' + rule if rule else ''}): "
            lines += _wrapped(text + setting.help)
    return "\n".join(lines)


# ${<name>:} in conf/hydra/default.yaml's help footer
RESOLVERS: dict[str, Callable[[], str]] = {
    "leo_model_settings": lambda: declared_help(LEOSettings, "model"),
    "leo_data_settings": lambda: declared_help(EpisodeSettings, "data"),
    "leo_affine_settings": lambda: declared_help(AffineSettings, "data.augment"),
    "leo_strategies": strategies_help,
}


def register_help_resolver() -> None:
    for name, render in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, render)
