"""Any directory of class folders as a few-shot dataset.

Layouts (``split``):

* ``folders``: ``root/train/<class>/<image>``, ``root/val/<class>/...``, ``root/test/<class>/...``;
  a class name may appear in one split only (few-shot splits are class-disjoint).
* ``random``: ``root/<class>/<image>``; classes (sorted by name) are shuffled with ``seed`` and
  the first ``test_fraction`` of them (rounded) become test, the next ``val_fraction`` validation,
  the rest training.
* ``auto`` (default): ``folders`` if ``root`` has a ``train``, ``val`` or ``test`` folder,
  otherwise ``random``.

Images are the ``.png``, ``.jpg`` and ``.jpeg`` files (any case) directly inside a class folder;
other files and hidden entries are ignored. Each is converted to ``channels`` (1: grayscale,
3: RGB; transparency composited onto white), resized to ``image_size`` x ``image_size`` with
antialiasing (no cropping: the aspect ratio is not kept), optionally inverted (``invert``: for
dark-on-light drawings, so ink is bright as in the rest of the project), and cached as one uint8
tensor in ``<cache_dir>/folder/``. The cache is named after the list of files with their sizes
and modification times and the decoding settings, so adding, removing or replacing an image
rebuilds it, while changing the split (``seed``, fractions) reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.files import atomic_save, decode_image, load_cache
from leo_lightning.errors import DataError, DataNotFoundError

__all__ = ["IMAGE_SUFFIXES", "FolderSource"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "val", "test")
MODES = ("auto", "folders", "random")
DECODER_VERSION = 2  # part of the cache key; 2: 16-bit grayscale scaled, no longer clipped


class FolderSource:
    """Images in ``root`` (see the module docstring for the layouts) as train/val/test pools."""

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 84,
        channels: int = 3,
        split: str = "auto",
        val_fraction: float = 0.16,
        test_fraction: float = 0.2,
        seed: int = 0,
        invert: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ):
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise DataError(f"data.source.image_size must be an int >= 1, got {image_size!r}")
        if channels not in (1, 3):
            raise DataError(f"data.source.channels must be 1 or 3, got {channels!r}")
        if split not in MODES:
            raise DataError(f"data.source.split={split!r}: expected one of {list(MODES)}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1):
            raise DataError(
                f"data.source.val_fraction={val_fraction} and test_fraction={test_fraction} "
                "must be in [0, 1)"
            )
        if val_fraction + test_fraction >= 1:
            raise DataError(
                f"data.source.val_fraction + test_fraction = {val_fraction + test_fraction} "
                "leaves no class for training; must be < 1"
            )
        self.root = Path(root)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / ".leo_cache"
        self.image_size, self.channels, self.invert = image_size, channels, bool(invert)
        self.split, self.seed = split, seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction

    # -- scanning ----------------------------------------------------------------------------

    def mode(self) -> str:
        """'folders' or 'random': what ``split`` means for this ``root``."""
        if self.split != "auto":
            return self.split
        return "folders" if any((self.root / s).is_dir() for s in SPLITS) else "random"

    def scan(self) -> list[tuple[str | None, str, list[Path]]]:
        """``[(split or None, class name, sorted image paths)]`` in a fixed order."""
        if not self.root.is_dir():
            raise DataNotFoundError(f"data.source.root {self.root.resolve()} is not a directory")
        if self.mode() == "random":
            classes = [(None, folder) for folder in _subfolders(self.root)]
        else:
            missing = [s for s in SPLITS if not (self.root / s).is_dir()]
            if missing:
                raise DataNotFoundError(
                    f"split folder(s) {missing} not found in {self.root.resolve()}: "
                    "data.source.split='folders' needs train/, val/ and test/ "
                    "(or use split='random' for one folder per class)"
                )
            classes = [(s, folder) for s in SPLITS for folder in _subfolders(self.root / s)]
            where: dict[str, str] = {}
            for split, folder in classes:
                if folder.name in where:
                    raise DataError(
                        f"class '{folder.name}' is in both split '{where[folder.name]}' and "
                        f"split '{split}' of {self.root.resolve()}; few-shot splits must not "
                        "share classes"
                    )
                where[folder.name] = split
        if not classes:
            raise DataNotFoundError(
                f"no class folders in {self.root.resolve()} (expected <class>/<image> folders)"
            )
        return [(split, folder.name, _images(folder)) for split, folder in classes]

    # -- decoding and cache ------------------------------------------------------------------

    def _cache_path(self, listing: list[tuple[str | None, str, list[Path]]]) -> Path:
        files = []
        for split, name, paths in listing:
            for path in paths:
                stat = path.stat()
                files.append([split, name, path.name, stat.st_size, stat.st_mtime_ns])
        key = {
            "root": str(self.root.resolve()),
            "files": files,
            "image_size": self.image_size,
            "channels": self.channels,
            "invert": self.invert,
            "version": DECODER_VERSION,
        }
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        name = f"{self.root.resolve().name}-{self.image_size}px-{self.channels}ch-{digest}.pt"
        return self.cache_dir / "folder" / name

    def _decoded(self) -> tuple[list[tuple[str | None, str, list[Path]]], torch.Tensor]:
        """The scan and every image as uint8 [M, C, S, S], in scan order; cached."""
        listing = self.scan()
        total = sum(len(paths) for _, _, paths in listing)
        shape = (total, self.channels, self.image_size, self.image_size)
        path = self._cache_path(listing)

        def is_valid(data: object) -> bool:
            images = data.get("images") if isinstance(data, dict) else None
            return (
                isinstance(images, torch.Tensor)
                and images.dtype == torch.uint8
                and tuple(images.shape) == shape
            )

        cached = load_cache(path, is_valid, "image folder")
        if cached is not None:
            return listing, cached["images"]
        logger.info("Decoding %d images of %s into %s", total, self.root, path)
        images = np.empty(shape, dtype=np.uint8)
        i = 0
        for _, _, paths in listing:
            for file in paths:
                images[i] = decode_image(file, self.image_size, self.channels, self.invert)
                i += 1
        tensor = torch.from_numpy(images)
        atomic_save({"images": tensor}, path)
        return listing, tensor

    def prepare(self) -> None:
        self._decoded()

    # -- splits ------------------------------------------------------------------------------

    def _split_of_classes(self, listing) -> list[str]:
        if self.mode() == "folders":
            return [split for split, _, _ in listing]
        n = len(listing)
        n_test = round(n * self.test_fraction)
        n_val = round(n * self.val_fraction)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        splits = [""] * n
        for position, cls in enumerate(order):
            splits[cls] = (
                "test" if position < n_test else "val" if position < n_test + n_val else "train"
            )
        return splits

    def load(self) -> dict[str, ClassPool]:
        listing, images = self._decoded()
        class_split = self._split_of_classes(listing)
        counts = torch.tensor([len(paths) for _, _, paths in listing], dtype=torch.long)
        labels = torch.repeat_interleave(torch.arange(len(listing)), counts)
        pools = {}
        for split in SPLITS:
            classes = [c for c in range(len(listing)) if class_split[c] == split]
            if not classes:
                raise DataError(
                    f"split '{split}' of {self.root.resolve()} has no classes ("
                    f"{len(listing)} classes in all, mode '{self.mode()}', "
                    f"val_fraction={self.val_fraction}, test_fraction={self.test_fraction})"
                )
            remap = torch.full((len(listing),), -1, dtype=torch.long)
            remap[classes] = torch.arange(len(classes))
            rows = (remap[labels] >= 0).nonzero().flatten()
            pools[split] = ClassPool.from_labels(
                images[rows], remap[labels[rows]], [listing[c][1] for c in classes]
            )
            logger.info("folder split %s: %d classes, %d images", split, len(classes), len(rows))
        return pools


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
