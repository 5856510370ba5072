"""The package is built in layers: a room imports only rooms below it, and nothing imports in a
circle. The layers, bottom up (README, "Layout"):

    errors, locations, declared  what every room may raise, find, or declare its settings with
    data, models                 episodes from datasets; the networks
    strategies                   how a task is adapted
    training                     the LightningModule and what a step needs
    config                       schemas, composition, the checks before a run
    jobs                         train / eval / predict / compare as functions, run folders
    cli, api                     the commands and the Python API, side by side on the jobs
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "leo_lightning"
LAYERS = {
    "errors": 0,
    "locations": 0,
    "declared": 0,
    "version": 0,
    "data": 1,
    "models": 1,
    "strategies": 2,
    "training": 3,
    "config": 4,
    "jobs": 5,
    "cli": 6,
    "api": 6,
}
TOP = 7  # leo_lightning/__init__.py: the public names


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(module: str) -> set[str]:
    """Every leo_lightning module `module` imports, at its top or inside a function."""
    tree = ast.parse(MODULES[module].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return {name for name in found if name.split(".")[0] == "leo_lightning"}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    return LAYERS[room(module)] if room(module) else TOP


def test_every_module_lives_in_a_room():
    homeless = [m for m in MODULES if m != "leo_lightning" and room(m) not in LAYERS]
    assert homeless == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_no_higher_layer(module):
    upward = sorted(i for i in imports(module) if layer(i) > layer(module))
    assert upward == [], f"{module} (layer {layer(module)}) imports {upward}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if room(m) in ("cli", "api")))
def test_the_commands_and_the_python_api_stand_side_by_side(module):
    other = "api" if room(module) == "cli" else "cli"
    assert not [i for i in imports(module) if room(i) == other]


def test_no_module_imports_in_a_circle():
    graph = {m: imports(m) - {m} for m in MODULES}
    visiting, done, cycles = [], set(), []

    def visit(module):
        if module in done:
            return
        if module in visiting:
            cycles.append(visiting[visiting.index(module) :] + [module])
            return
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            # a package's __init__ re-exports its modules: importing them is not a cycle back
            if not module.startswith(f"{target}."):
                visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []
