"""How a group of settings is declared once: a dataclass whose fields carry their default and a
line of help. The class that uses the settings takes them by name and fills the rest from the
declaration; the config schema subclasses it; `--help` prints the help. (A strategy's settings
are declared in its spec instead: strategies/spec.py.)"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar, TypeVar

Settings = TypeVar("Settings")


def setting(default: Any, help: str) -> Any:  # noqa: A002 - the word the --help lists
    """A field with its default and what it does."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def from_mapping(cls: type[Settings], values: Mapping[str, Any], prefix: str) -> Settings:
    """`cls` with the values given and every other at its default; an unknown key is refused,
    naming the closest real one (`prefix`: where the keys live, e.g. "model")."""
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"; did you mean {prefix}.{close[0]}?" if close else ""
            raise TypeError(f"{prefix}.{key}: not a setting of {prefix}{hint}")
    return cls(**values)


class Declared:
    """Base of a settings dataclass: built from the values given by name (`from_mapping`),
    read back as a dict. `PREFIX`: where its keys live in a config, for messages."""

    PREFIX: ClassVar[str] = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Any:
        return from_mapping(cls, values, cls.PREFIX)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def help_lines(cls: type) -> list[tuple[str, Any, str]]:
    """(key, default, help) of every field, in declaration order."""
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        lines.append((f.name, default, f.metadata.get("help", "")))
    return lines
