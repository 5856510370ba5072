"""`data=combined`: several data sources as one, for pretraining and meta-training on more
classes (e.g. the glyphs and Omniglot minimal's background alphabets).

Each split is the union of the same split of every source: a held-out class of one source can
never reach another split, and pretraining, which reads the training split only, never sees a
validation or test class of any source. Classes stay apart by source: a class is named
"<source>/<its name>" (two sources' class "0" are two classes). `eval_sources` takes the
validation and test splits from some of the sources only (train on glyphs + Omniglot, test on
Omniglot's held-out alphabets alone).

Groups: a source's own groups (Omniglot's alphabets) are kept as "<source>/<group>", and a
source without groups puts its classes in one group named after it, so `data.within_alphabet`
draws each episode from one alphabet or one ungrouped source. With `group_by_source` every
class's group is its source, and `data.within_alphabet=true` draws each episode from one source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.errors import DataError

SPLITS = ("train", "val", "test")


class CombinedSource:
    """The union of `sources` (name -> a built data source), see the module docstring."""

    def __init__(
        self,
        sources: Mapping[str, Any],
        eval_sources: Sequence[str] | None = None,
        group_by_source: bool = False,
    ):
        if not sources:
            raise DataError("data.source.sources is empty: name at least one data source")
        unknown = [name for name in eval_sources or () if name not in sources]
        if unknown or (eval_sources is not None and not eval_sources):
            raise DataError(
                f"data.source.eval_sources={list(eval_sources or [])}: must name some of "
                f"data.source.sources ({', '.join(sources)})"
            )
        self.sources = dict(sources)
        self.eval_sources = list(eval_sources) if eval_sources else list(sources)
        self.group_by_source = group_by_source

    def prepare(self) -> None:
        for source in self.sources.values():
            source.prepare()

    def load(self) -> dict[str, ClassPool]:
        loaded = {name: source.load() for name, source in self.sources.items()}
        self._check_shapes(loaded)
        combined = {}
        for split in SPLITS:
            names = self.sources if split == "train" else self.eval_sources
            pools = [self._labelled(name, loaded[name][split]) for name in names]
            combined[split] = ClassPool.concat(pools)
        return combined

    def _labelled(self, source: str, pool: ClassPool) -> ClassPool:
        """`pool` with its classes named and grouped by `source` (see the module docstring)."""
        names = tuple(f"{source}/{name}" for name in pool.class_names)
        if self.group_by_source or pool.groups is None:
            groups = [source] * pool.n_classes
        else:
            groups = [f"{source}/{pool.group_names[g]}" for g in pool.groups.tolist()]
        return ClassPool(pool.data, pool.index, pool.counts, names).with_groups(groups)

    def _check_shapes(self, loaded: dict[str, dict[str, ClassPool]]) -> None:
        """Every source's examples must have one shape and type, or no batch holds them."""
        kinds = {
            name: (pools["train"].example_shape, pools["train"].data.dtype)
            for name, pools in loaded.items()
        }
        if len(set(kinds.values())) > 1:
            listed = ", ".join(f"{n}: {list(s)} {d}" for n, (s, d) in kinds.items())
            raise DataError(
                f"data.source.sources give examples of different shapes or types ({listed}); "
                "give every source the same data.image_size and channels"
            )
