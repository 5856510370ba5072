"""The strategies the package ships, found by looking rather than by a list: a module added to
strategies/ whose class declares a `spec` is known everywhere (its settings' schema, the config
checks, `--help`) without being named anywhere else. A strategy of your own, outside the
package, is found through its config's `_target_` (`strategy_class`)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from hydra.utils import get_class

from leo_lightning.strategies.base import Strategy


def built_in() -> list[type[Strategy]]:
    """Every concrete strategy class defined in this package, in the order of their names."""
    package = importlib.import_module("leo_lightning.strategies")
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Strategy)
                and "spec" in vars(cls)
                and cls.__module__ == module.__name__
            ):
                found[cls.spec.name] = cls
    return [found[name] for name in sorted(found)]


def strategy_class(target: str) -> type[Strategy]:
    """The class a config's `strategy._target_` names (the user's own config: importing it is
    what building it would do). Raises ValueError, in the user's terms, if it is none."""
    try:
        cls = get_class(target)
    except Exception as error:  # noqa: BLE001 - hydra wraps import errors in several types
        raise ValueError(f"strategy._target_={target!r}: cannot be imported ({error})") from error
    if not (issubclass(cls, Strategy) and hasattr(cls, "spec")):
        raise ValueError(
            f"strategy._target_={target!r}: not a strategy (a subclass of "
            "leo_lightning.strategies.Strategy that declares a `spec`)"
        )
    return cls
