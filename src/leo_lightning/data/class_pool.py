"""One split's examples, grouped by class, held as a single tensor.

Episodes are assembled by indexing into ``data`` with a padded class -> example index table, so
sampling costs a few small tensor operations and no per-image Python work, whatever the number
of classes or the number of examples each class has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from leo_lightning.data.errors import DataError


@dataclass(frozen=True)
class ClassPool:
    data: Tensor  # [M, *example_shape], uint8 images or float features
    index: Tensor  # [n_classes, max_count] long: rows of `data` for each class, padded with -1
    counts: Tensor  # [n_classes] long
    class_names: tuple[str, ...]

    @classmethod
    def from_grouped(cls, grouped: Tensor, class_names: Sequence[str] | None = None) -> ClassPool:
        """From a tensor [n_classes, examples, *example_shape] (every class the same size)."""
        n_classes, n_examples = grouped.shape[:2]
        index = torch.arange(n_classes * n_examples).view(n_classes, n_examples)
        counts = torch.full((n_classes,), n_examples, dtype=torch.long)
        names = tuple(class_names) if class_names else tuple(str(i) for i in range(n_classes))
        return cls(grouped.reshape(-1, *grouped.shape[2:]), index, counts, names)

    @classmethod
    def from_labels(cls, data: Tensor, labels: Tensor, class_names: Sequence[str]) -> ClassPool:
        """From examples [M, ...] with class ids [M] in 0..len(class_names)-1 (sizes may differ)."""
        labels = torch.as_tensor(labels, dtype=torch.long)
        counts = torch.bincount(labels, minlength=len(class_names))
        order = torch.argsort(labels, stable=True)
        index = torch.full((len(class_names), int(counts.max())), -1, dtype=torch.long)
        position = torch.arange(len(labels)) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        index[labels[order], position] = order
        return cls(data, index, counts, tuple(class_names))

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
