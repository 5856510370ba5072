"""A mistyped key on the command line: say that it does not exist and name the closest real one.

For `model.latnet_dim=3` Hydra answers "To append to your config use +model.latnet_dim=3";
that composes, and then fails inside the model with a TypeError. Every config here has a schema,
so a new key is never what the user meant. The commands (cli/overrides.py) and the Python API
(api/runs.py) ask `unknown_key_message` when Hydra rejects a key: one line naming the closest
existing key.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError


def unknown_key_message(config_dir: Path, config_name: str, overrides: Sequence[str]) -> str | None:
    """One line for a command-line key that the composed config does not have, with the
    closest real key; None when there is none (every other error is left to Hydra).

    A sweep (`-m a=1,2`) is left to Hydra as well: its jobs are composed by the sweeper."""
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return None  # Hydra reports the syntax error itself
    if any(override.is_sweep_override() for override in parsed):
        return None
    try:
        _compose(config_dir, config_name, overrides)
        return None
    except ConfigCompositionException as error:
        key = _rejected_key(error)
    given = [
        o for o in parsed if _names(o.key_or_group, key) and not (o.is_add() or o.is_force_add())
    ]
    if key is None or not given:
        return None
    try:  # the config without the bad key: the keys that do exist
        cfg = _compose(config_dir, config_name, [o.input_line for o in parsed if o not in given])
    except ConfigCompositionException:
        cfg = None
    typed = given[0].key_or_group
    suggestion = closest_key(typed, cfg) if cfg is not None else None
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    return f"{typed}: no such key{hint} (`--cfg job` prints every key)"


def closest_key(key: str, cfg: DictConfig) -> str | None:
    """The existing dotted key most like `key` (difflib's ratio >= 0.6), or None. Below the
    longest part of `key` that exists (`data.source` of `data.source.train_clases`) only that
    part's keys are candidates, so a shared prefix cannot make an unrelated key look close."""
    container = OmegaConf.to_container(cfg, resolve=False)
    parts = key.split(".")
    node, depth = container, 0
    while depth < len(parts) - 1 and isinstance(node, dict) and parts[depth] in node:
        node, depth = node[parts[depth]], depth + 1
    prefix = ".".join(parts[:depth])
    rest = ".".join(parts[depth:])
    matches = difflib.get_close_matches(rest, list(_dotted_keys(node)), n=1, cutoff=0.6)
    if not matches:
        return None
    return f"{prefix}.{matches[0]}" if prefix else matches[0]


def _compose(config_dir: Path, config_name: str, overrides: Sequence[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name, overrides=list(overrides))


def _rejected_key(error: BaseException) -> str | None:
    """The full key of the ConfigKeyError/ConfigAttributeError behind a composition error."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
            return str(cause.full_key)
        cause = cause.__cause__
    return None


def _names(given: str, rejected: str | None) -> bool:
    """Whether the command-line key `given` is (or lies below) the `rejected` key."""
    return rejected is not None and (given == rejected or given.startswith(f"{rejected}."))


def _dotted_keys(node: object, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for name, child in node.items():
            key = f"{prefix}{name}"
            yield key
            yield from _dotted_keys(child, f"{key}.")
