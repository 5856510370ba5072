"""One split's examples, grouped by class, held as a single tensor.

Episodes are assembled by indexing into ``data`` with a padded class -> example index table, so
sampling costs a few small tensor operations and no per-image Python work, whatever the number
of classes or the number of examples each class has.

A source may also put its classes into named groups (Omniglot: the alphabet, in one rotation),
so that an episode can be drawn from the classes of one group (``data.within_alphabet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from leo_lightning.errors import DataError


@dataclass(frozen=True)
class ClassPool:
    data: Tensor  # [M, *example_shape], uint8 images or float features
    index: Tensor  # [n_classes, max_count] long: rows of `data` for each class, padded with -1
    counts: Tensor  # [n_classes] long
    class_names: tuple[str, ...]
    # Optional: the group of each class ([n_classes] long, ids into group_names), or None.
    groups: Tensor | None = None
    group_names: tuple[str, ...] = ()

    @classmethod
    def from_grouped(cls, grouped: Tensor, class_names: Sequence[str] | None = None) -> ClassPool:
        """From a tensor [n_classes, examples, *example_shape] (every class the same size)."""
        n_classes, n_examples = grouped.shape[:2]
        index = torch.arange(n_classes * n_examples).view(n_classes, n_examples)
        counts = torch.full((n_classes,), n_examples, dtype=torch.long)
        names = tuple(class_names) if class_names else tuple(str(i) for i in range(n_classes))
        return cls(grouped.reshape(-1, *grouped.shape[2:]), index, counts, names)

    @classmethod
    def from_labels(
        cls,
        data: Tensor,
        labels: Tensor,
        class_names: Sequence[str],
        class_groups: Sequence[str] | None = None,
    ) -> ClassPool:
        """From examples [M, ...] with class ids [M] in 0..len(class_names)-1 (sizes may differ);
        ``class_groups``, if given, names the group of each class."""
        labels = torch.as_tensor(labels, dtype=torch.long)
        counts = torch.bincount(labels, minlength=len(class_names))
        order = torch.argsort(labels, stable=True)
        index = torch.full((len(class_names), int(counts.max())), -1, dtype=torch.long)
        position = torch.arange(len(labels)) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        index[labels[order], position] = order
        return cls(data, index, counts, tuple(class_names)).with_groups(class_groups)

    def with_groups(self, class_groups: Sequence[str] | None) -> ClassPool:
        """This pool with the group of each class named (None: no groups); ids follow the order
        in which the names first appear."""
        if class_groups is None:
            return replace(self, groups=None, group_names=())
        if len(class_groups) != self.n_classes:
            raise ValueError(f"{len(class_groups)} group names for {self.n_classes} classes")
        names = tuple(dict.fromkeys(class_groups))
        ids = {name: i for i, name in enumerate(names)}
        groups = torch.tensor([ids[g] for g in class_groups], dtype=torch.long)
        return replace(self, groups=groups, group_names=names)

    @classmethod
    def concat(cls, pools: Sequence[ClassPool]) -> ClassPool:
        """One pool holding the classes of all ``pools``, in order (e.g. train + val). Groups of
        the same name are merged; if any pool has no groups, neither has the result."""
        offsets = torch.tensor([0] + [len(p.data) for p in pools[:-1]]).cumsum(0).tolist()
        width = max(p.index.shape[1] for p in pools)
        index = torch.full((sum(p.n_classes for p in pools), width), -1, dtype=torch.long)
        row = 0
        for pool, offset in zip(pools, offsets):
            block = pool.index + offset
            index[row : row + pool.n_classes, : block.shape[1]] = block.where(pool.index >= 0, -1)
            row += pool.n_classes
        merged = cls(
            torch.cat([p.data for p in pools]),
            index,
            torch.cat([p.counts for p in pools]),
            tuple(name for p in pools for name in p.class_names),
        )
        if any(p.groups is None for p in pools):
            return merged
        return merged.with_groups([p.group_names[g] for p in pools for g in p.groups.tolist()])

    @property
    def n_classes(self) -> int:
        return self.index.shape[0]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def check_supports(self, split: str, n_way: int, examples_per_class: int) -> None:
        """Raise a ValueError naming the split, the classes and the counts if episodes of this
        shape cannot be drawn without replacement."""
        if self.n_classes < n_way:
            raise DataError(
                f"split '{split}' has {self.n_classes} classes but data.n_way={n_way} "
                f"needs at least {n_way}"
            )
        short = (self.counts < examples_per_class).nonzero().flatten().tolist()
        if short:
            listed = ", ".join(
                f"'{self.class_names[i]}' ({int(self.counts[i])})" for i in short[:5]
            )
            more = f" and {len(short) - 5} more" if len(short) > 5 else ""
            raise DataError(
                f"split '{split}': {len(short)} class(es) have fewer than "
                f"data.k_shot + data.n_query = {examples_per_class} examples: {listed}{more}"
            )

    def group_sizes(self) -> Tensor:
        """[n_groups] long: the number of classes in each group (requires groups)."""
        return torch.bincount(self.groups, minlength=len(self.group_names))

    def check_groups(self, split: str, n_way: int, key: str) -> None:
        """Raise a DataError naming ``key`` unless some group holds at least ``n_way`` classes
        (episodes drawn within one group then use only such groups)."""
        if self.groups is None:
            raise DataError(
                f"{key}=true draws each episode's classes from one group (alphabet), but split "
                f"'{split}' has no groups: only data=omniglot, and data=embeddings of it, group "
                "their classes by alphabet"
            )
        sizes = self.group_sizes()
        if int(sizes.max()) < n_way:
            largest = int(sizes.argmax())
            raise DataError(
                f"{key}=true: no alphabet of split '{split}' has data.n_way={n_way} classes "
                f"(the largest, '{self.group_names[largest]}', has {int(sizes[largest])}); "
                f"lower data.n_way or set {key}=false"
            )
