"""What a config read from a file may build: only the classes the user's own config files name.

A checkpoint stores the config its model and data were built from (`hyper_parameters`: the
backbone and the strategy; `leo_lightning.config`: the data), and loading it builds them again
with Hydra's `instantiate`, which imports and calls whatever each `_target_` string names.
`weights_only=True` keeps the pickle itself from running code; it does nothing about these
strings: a `_target_` of `torch.load` or `builtins.open` would run from a file that passed the
safe load. So before anything stored is built, every `_target_` in it is checked against the
targets that the config files the user runs with name for that part (the package's own
`conf/`, and any config folder the user adds with `--config-dir` or `config_dir=`): a file the
user runs is trusted by running it, a checkpoint is not. Interpolations (`${...}`) are refused
too: checkpoints store their config resolved, and a resolver such as `oc.decode` could build a
node with a `_target_` of its own after this check.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from leo_lightning.errors import CheckpointError
from leo_lightning.locations import CONFIG_DIR

# The parts of a stored config that get built, and where their targets sit in a composed config.
ROLES = {"data": "data", "backbone": "model.backbone", "strategy": "strategy"}


def check_stored_targets(
    config: Any, role: str, source: str, config_dirs: Iterable[str | Path] = ()
) -> None:
    """Refuse `config` (the `role` part of a config read from `source`) if any `_target_` in it
    is not one that the user's config files name for that role, or if it holds an
    interpolation. Nothing is imported or built here."""
    allowed = allowed_targets(role, tuple(str(d) for d in [*config_dirs, *_hydra_config_dirs()]))
    for path, value in _walk(config, ROLES[role]):
        if isinstance(value, str) and "${" in value:
            raise CheckpointError(
                f"{source}: {path}={value!r} is an interpolation; a stored config is saved "
                "resolved, so this file was not written by leo-lightning: refusing to build "
                "anything from it"
            )
        if path.rsplit(".", 1)[-1] != "_target_":
            continue
        if not isinstance(value, str) or value not in allowed:
            raise CheckpointError(
                f"{source}: {path}={value!r} is not a {role} class of this project's configs "
                f"(allowed: {', '.join(sorted(allowed))}); refusing to build anything from "
                "this file. A class of your own is allowed when a config file in a folder you "
                "pass with --config-dir (or config_dir=) names it"
            )


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) for every leaf and every `_target_` under `node`."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
    else:
        yield path, node


def _hydra_config_dirs() -> list[str]:
    """Inside a Hydra app (the commands), the config folders on its search path: the package's
    and any the user added with --config-dir or hydra.searchpath."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    sources = HydraConfig.get().runtime.config_sources
    return [s.path for s in sources if s.schema == "file"]


@functools.cache
def allowed_targets(role: str, config_dirs: tuple[str, ...] = ()) -> frozenset[str]:
    """Every `_target_` that a YAML file of the package's configs or of `config_dirs` places
    under the role's key (e.g. `strategy._target_` in conf/strategy/maml.yaml)."""
    prefix = ROLES[role]
    targets = set()
    for folder in {str(CONFIG_DIR), *config_dirs}:
        for file in sorted(Path(folder).rglob("*.yaml")):
            package = _package(file, Path(folder))
            for path, value in _walk(_load(file), package):
                inside = path.lstrip(".")
                if inside.startswith(f"{prefix}.") and inside.endswith("._target_"):
                    targets.add(value)
    return frozenset(t for t in targets if isinstance(t, str) and "${" not in t)


def _package(file: Path, folder: Path) -> str:
    """Where the file's content lands in the composed config: its group's path (Hydra's
    default), or what its `# @package` header says (`_global_`: the root)."""
    group = ".".join(file.relative_to(folder).parent.parts)
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("# @package"):
            package = line.split(None, 2)[2].strip()
            return "" if package == "_global_" else package.replace("_group_", group)
        if line.strip() and not line.startswith("#"):
            break
    return group


def _load(file: Path) -> Any:
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}  # not a config Hydra could compose either; it names no target
