"""Hydra's sweep syntax as Optuna distributions, and sampled values back as Hydra overrides.

Users already know Hydra's override grammar from `-m` sweeps, so the search space is written in
it: `choice(...)` and `a,b,c` become categorical, `range(start, stop, step)` an integer (or
stepped float) distribution over the same values, `interval(low, high)` a float distribution.
The tags `log` (log-uniform) and `int` (integer interval) refine them. A plain value fixes a key
for every trial.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

KNOWN_TAGS = {"log", "int"}
_UNQUOTED = re.compile(r"^[A-Za-z0-9_./:+\-]+$")


class SearchSpaceError(ValueError):
    """A search-space entry that cannot become an Optuna distribution; names the key."""


@dataclass(frozen=True)
class Dimension:
    """One searched key and its distribution."""

    key: str  # as written in the override, e.g. "model.latent_dim", "+x", "strategy"
    distribution: BaseDistribution

    def override(self, value: Any) -> str:
        return f"{self.key}={format_value(value)}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    fixed: tuple[str, ...]  # overrides applied to every trial unchanged

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {d.key: d.distribution for d in self.dimensions}

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The command-line overrides of one trial whose sampled values are `params`."""
        return [*self.fixed, *(d.override(params[d.key]) for d in self.dimensions)]


def format_value(value: Any) -> str:
    """A sampled value as Hydra override text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _UNQUOTED.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_search_space(params: Mapping[str, Any], arguments: list[str]) -> SearchSpace:
    """`params` from the sweeper config and the command-line `arguments` of `-m`; a key given on
    the command line replaces the same key of `params`."""
    flat = _flatten(params)
    lines = {key: f"{key}={_as_override_text(key, value)}" for key, value in flat.items()}
    parser = OverridesParser.create()
    for override in parser.parse_overrides(arguments):
        lines.pop(override.get_key_element(), None)
    overrides = parser.parse_overrides(list(lines.values())) + parser.parse_overrides(arguments)
    dimensions, fixed = [], []
    for override in overrides:
        if override.is_sweep_override():
            dimensions.append(_dimension(override))
        else:
            fixed.append(override.input_line)
    return SearchSpace(tuple(dimensions), tuple(fixed))


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: `params: {model: {lr: ...}}` and `params: {model.lr: ...}`
    both mean model.lr."""
    flat = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _as_override_text(key: str, value: Any) -> str:
    if isinstance(value, list | tuple):  # a YAML list is a choice
        return f"choice({', '.join(format_value(v) for v in value)})"
    if isinstance(value, str):
        return value  # already sweep syntax, e.g. "interval(0.1, 1)"
    if value is None or isinstance(value, bool | int | float):
        return format_value(value)
    raise SearchSpaceError(
        f"hydra.sweeper.params.{key}: expected a sweep such as 'choice(1, 2)' or a plain value, "
        f"got {type(value).__name__} {value!r}"
    )


def _dimension(override: Override) -> Dimension:
    key = override.get_key_element()
    sweep = override.value()
    tags = set(getattr(sweep, "tags", ()) or ())
    if unknown := tags - KNOWN_TAGS:
        raise SearchSpaceError(
            f"{key}: unknown tag(s) {sorted(unknown)} in '{override.input_line}'; "
            f"expected any of {sorted(KNOWN_TAGS)}"
        )
    if isinstance(sweep, ChoiceSweep):
        return Dimension(key, _categorical(key, sweep))
    if isinstance(sweep, RangeSweep):
        return Dimension(key, _range(key, sweep, log="log" in tags))
    if isinstance(sweep, IntervalSweep):
        return Dimension(key, _interval(key, sweep, tags))
    raise SearchSpaceError(f"{key}: cannot search '{override.input_line}'")


def _categorical(key: str, sweep: ChoiceSweep) -> BaseDistribution:
    values = list(sweep.list)
    if any(not (v is None or isinstance(v, bool | int | float | str)) for v in values):
        raise SearchSpaceError(
            f"{key}: choices must be numbers, strings, booleans or null, got {values!r}"
        )
    if len(set(map(repr, values))) != len(values):
        raise SearchSpaceError(f"{key}: repeated choice in {values!r}")
    return CategoricalDistribution(values)


def _range(key: str, sweep: RangeSweep, log: bool) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step is None or step <= 0 or start is None or stop is None or not start < stop:
        raise SearchSpaceError(
            f"{key}: range(start, stop, step) needs start < stop and step > 0, "
            f"got range({start}, {stop}, {step})"
        )
    count = math.ceil((stop - start) / step)  # like Python's range: stop is excluded
    last = start + (count - 1) * step
    if all(isinstance(v, int) for v in (start, stop, step)):
        if log and step != 1:
            raise SearchSpaceError(f"{key}: a log range needs step 1, got {step}")
        return IntDistribution(int(start), int(last), log=log, step=int(step))
    if log:
        raise SearchSpaceError(f"{key}: use tag(log, interval(...)) for a log-uniform float")
    return FloatDistribution(float(start), float(last), step=float(step))


def _interval(key: str, sweep: IntervalSweep, tags: set[str]) -> BaseDistribution:
    low, high, log = sweep.start, sweep.end, "log" in tags
    if not low < high or (log and low <= 0):
        raise SearchSpaceError(
            f"{key}: interval(low, high) needs low < high"
            + (" and low > 0 for tag log" if log else "")
            + f", got interval({low}, {high})"
        )
    if "int" in tags:
        if low != int(low) or high != int(high):
            raise SearchSpaceError(f"{key}: tag int needs whole bounds, got ({low}, {high})")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)
