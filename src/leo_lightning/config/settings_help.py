"""The settings' part of `--help`, written from where each is declared: the model's
(training/settings.py), the episodes' (data/settings.py), the affine augmentation's
(data/augment.py), the run's and the Trainer's (config/schemas.py), and each strategy with its
own (its spec), with defaults and rules, after what it fits per task and what it meta-learns."""

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
    """Every declared setting of `cls` (fields with help), as `prefix.key (default ...)`."""
    lines = []
    for key, default, text in help_lines(cls):
        if text:
            name = f"{prefix}.{key}" if prefix else key
            lines += _wrapped(f"{name} (default {default!r}): {text}")
    return "\n".join(lines)


def strategies_help() -> str:
    lines = []
    for strategy in built_in():
        spec = strategy.spec
        lines.append(f"{spec.name}: {spec.summary}")
        # what separates the strategies of a comparison, before the settings
        if spec.fitted_per_task:
            lines += _wrapped(f"fitted per task: {spec.fitted_per_task}")
        if spec.meta_learned:
            lines += _wrapped(f"meta-learned: {spec.meta_learned}")
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


def register_help_resolver(run_schema: type, trainer_schema: type) -> None:
    """The resolvers of the help footer; the run's and the Trainer's schemas are passed in by
    config/schemas.py, which defines them."""
    resolvers = {
        **RESOLVERS,
        "leo_run_settings": lambda: declared_help(run_schema, ""),
        "leo_trainer_settings": lambda: declared_help(trainer_schema, "trainer"),
    }
    for name, render in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, render)
