"""The glyphs dataset as an episode source."""

from __future__ import annotations

import os

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.glyphs import load_glyph_splits


class GlyphSource:
    """Procedural characters, rendered once per (size, seed, class counts) and cached as uint8."""

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 28,
        seed: int = 0,
        train_classes: int = 3000,
        val_classes: int = 300,
        test_classes: int = 300,
        examples_per_class: int = 20,
    ):
        self.root, self.image_size, self.seed = root, image_size, seed
        self.classes = {"train": train_classes, "val": val_classes, "test": test_classes}
        self.examples_per_class = examples_per_class

    def _splits(self):
        return load_glyph_splits(
            self.root, self.image_size, self.seed, self.classes, self.examples_per_class
        )

    def prepare(self) -> None:
        self._splits()

    def load(self) -> dict[str, ClassPool]:
        return {
            split: ClassPool.from_grouped(images, [f"{split}-{i}" for i in range(len(images))])
            for split, images in self._splits().items()
        }
