"""The strategies' part of `--help`, written from their specs: each option with its one line,
and each of its settings with its default, its rule and what it does."""

from __future__ import annotations

import textwrap

from omegaconf import OmegaConf

from leo_lightning.strategies.catalog import built_in

RESOLVER = "leo_strategies"  # ${leo_strategies:} in conf/hydra/default.yaml's help footer


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
