"""Omniglot (Lake et al., 2015) read straight from its zip archives.

Archives (the files of github.com/brendenlake/omniglot, ``python/`` folder), looked up in
``root`` and in ``root/omniglot-py`` (where ``torchvision.datasets.Omniglot`` downloads them);
the two minimal sets also ship with this package (``data/bundled/omniglot``) and are read from
there when ``root`` has no copy of its own. Every archive with a known SHA-256 is checked
against it before decoding, so a truncated or altered copy fails by name instead of training on
wrong data:

========================  ==============================================================
``background``            ``images_background.zip``: 30 alphabets, 964 characters
``evaluation``            ``images_evaluation.zip``: 20 alphabets, 659 characters
``small1``, ``small2``    ``images_background_small1.zip`` / ``_small2.zip``: 5 alphabets
                          each, Greek and Latin in both (the "minimal" background sets)
========================  ==============================================================

Inside each: ``<set>/<alphabet>/<characterNN>/<NNNN_DD>.png``, 105 x 105, 1-bit, black strokes
on white, 20 drawings per character. A character is identified by ``<alphabet>/<characterNN>``.

Preprocessing: each PNG is decoded, **inverted** (ink bright, 255, on a black background, 0: the
convention of the whole project, so zero padding and max pooling see background as nothing),
resized with antialiasing to ``image_size`` and kept as uint8 [1, S, S]. Each archive is
decoded once per size and cached as ``<cache_dir>/omniglot/<archive>-<S>px-<sha>-v<N>.pt``
(``sha`` is the archive's SHA-256, so a replaced archive is never served from a stale cache).
Rotations by 90, 180 and 270 degrees make three more classes per character; they are applied
after the split, so all four copies of a character are always in the same split.

Splits (``split``), at the level of characters, with fixed documented rules (no seed):

* ``standard``: all characters of the chosen background archive(s) and of the evaluation
  archive, ordered background first then evaluation, alphabets by name, characters by name.
  The last 423 are test, the 172 before them validation, the rest training (with the full
  archives: 1028 / 172 / 423 characters, i.e. the 1200 / 423 protocol with Vinyals et al.'s
  validation size). Alphabets stay whole except for the (at most two) alphabets that straddle a
  boundary, which the exact counts require; their names are logged.
* ``lake``: Lake's protocol: train on the background archive(s), test on the evaluation archive.
  Validation is made of whole background alphabets, taken from the end of the background order
  until they hold at least 172/1200 of the background characters.
* ``alphabets``: the background archive(s) only; the alphabets named in ``val_alphabets`` and
  ``test_alphabets`` are held out whole, every other alphabet is training.

With ``background="small"`` both minimal archives are read; a character present in both (Greek
and Latin) is kept once, after checking that its images are identical.

Groups (for ``data.within_alphabet``, Lake et al.'s within-alphabet episodes): the classes of a
split are grouped by alphabet and rotation (``Korean/rot90``; by alphabet alone without
rotations), so the N classes of such an episode differ only by which character they are, never
by how they are turned. A group with fewer than N characters is never drawn from; the episode's
group is drawn uniformly from the others. An alphabet split between two splits (``standard``)
forms a group in each, of its characters in that split.
"""

from __future__ import annotations

import logging
import math
import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.files import atomic_save, decode_image, file_sha256, load_cache
from leo_lightning.errors import DataError, DataNotFoundError

__all__ = ["ARCHIVES", "BACKGROUNDS", "OmniglotSource"]

logger = logging.getLogger(__name__)

ARCHIVES = {
    "background": "images_background.zip",
    "evaluation": "images_evaluation.zip",
    "small1": "images_background_small1.zip",
    "small2": "images_background_small2.zip",
}
BACKGROUNDS = {
    "full": ("background",),
    "small1": ("small1",),
    "small2": ("small2",),
    "small": ("small1", "small2"),
}
# The archives that ship with the package, and the checksum every copy of them must have.
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled" / "omniglot"
KNOWN_SHA256 = {
    "images_background_small1.zip": (
        "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4"
    ),
    "images_background_small2.zip": (
        "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f"
    ),
}
SPLITS = ("standard", "lake", "alphabets")
DOWNLOADABLE = ("background", "evaluation")  # the two archives torchvision knows
TORCHVISION_FOLDER = "omniglot-py"

STANDARD_TEST_CHARACTERS = 423
STANDARD_VAL_CHARACTERS = 172
STANDARD_TRAIN_CHARACTERS = 1200  # training part, validation included
DECODER_VERSION = 1  # bump when decoding changes: it is part of the cache file name

_MIN_IMAGE_SIZE = 8


class OmniglotSource:
    """Omniglot characters as few-shot classes; see the module docstring for the protocol."""

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 28,
        rotations: bool = True,
        split: str = "standard",
        background: str = "full",
        val_alphabets: Sequence[str] = (),
        test_alphabets: Sequence[str] = (),
        download: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ):
        if isinstance(image_size, bool) or not isinstance(image_size, int):
            raise DataError(f"data.source.image_size must be an int, got {image_size!r}")
        if image_size < _MIN_IMAGE_SIZE:
            raise DataError(
                f"data.source.image_size must be >= {_MIN_IMAGE_SIZE}, got {image_size}"
            )
        if split not in SPLITS:
            raise DataError(f"data.source.split={split!r}: expected one of {list(SPLITS)}")
        if background not in BACKGROUNDS:
            raise DataError(
                f"data.source.background={background!r}: expected one of {list(BACKGROUNDS)}"
            )
        self.root = Path(root)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root
        self.image_size = image_size
        self.rotations = bool(rotations)
        self.split = split
        self.background = background
        self.val_alphabets = [str(a) for a in val_alphabets]
        self.test_alphabets = [str(a) for a in test_alphabets]
        self.download = bool(download)
        if split == "alphabets":
            if not self.val_alphabets or not self.test_alphabets:
                raise DataError(
                    "data.source.split='alphabets' needs data.source.val_alphabets and "
                    "data.source.test_alphabets (alphabets held out whole for validation and test)"
                )
            both = sorted(set(self.val_alphabets) & set(self.test_alphabets))
            if both:
                raise DataError(
                    f"alphabet(s) {both} are in both data.source.val_alphabets and "
                    "data.source.test_alphabets; held-out splits must be disjoint"
                )
        elif self.val_alphabets or self.test_alphabets:
            raise DataError(
                "data.source.val_alphabets/test_alphabets are only used with "
                f"data.source.split='alphabets' (split is {split!r}); leave them empty"
            )

    # -- archives ----------------------------------------------------------------------------

    @property
    def archive_keys(self) -> tuple[str, ...]:
        """The archives this configuration reads, background(s) first."""
        keys = BACKGROUNDS[self.background]
        return keys if self.split == "alphabets" else (*keys, "evaluation")

    def _find(self, key: str) -> Path | None:
        """The user's copy first (root, then torchvision's folder), then the bundled one."""
        for folder in (self.root, self.root / TORCHVISION_FOLDER, BUNDLED_DIR):
            path = folder / ARCHIVES[key]
            if path.is_file():
                return path
        return None

    def _missing_error(self, missing: Sequence[str], extra: str = "") -> DataNotFoundError:
        names = ", ".join(ARCHIVES[k] for k in missing)
        hint = ""
        if not self.download and any(k in DOWNLOADABLE for k in missing):
            hint = (
                " (or set data.source.download=true to fetch images_background.zip and "
                "images_evaluation.zip through torchvision)"
            )
        return DataNotFoundError(
            f"Omniglot archive(s) not found: {names}. Put them in {self.root.resolve()} "
            f"(looked there and in its {TORCHVISION_FOLDER}/ subfolder; set data.source.root to "
            "move it). They are the zip files of the python/ folder of "
            f"https://github.com/brendenlake/omniglot{hint}.{extra}"
        )

    def _download(self, keys: Sequence[str]) -> None:
        not_downloadable = [k for k in keys if k not in DOWNLOADABLE]
        if not_downloadable:
            listed = ", ".join(ARCHIVES[k] for k in not_downloadable)
            raise self._missing_error(
                keys, f" torchvision cannot download {listed}: place it there by hand."
            )
        from torchvision.datasets import Omniglot  # only needed here, and imports are slow

        for key in keys:
            logger.info("Downloading %s through torchvision into %s", ARCHIVES[key], self.root)
            try:
                Omniglot(str(self.root), background=key == "background", download=True)
            except Exception as error:  # no network, HTTP error, checksum mismatch, ...
                raise self._missing_error(
                    keys, f" Downloading them failed: {type(error).__name__}: {error}"
                ) from error

    def _archives(self, allow_download: bool) -> dict[str, Path]:
        missing = [k for k in self.archive_keys if self._find(k) is None]
        if missing and allow_download and self.download:
            self._download(missing)
            missing = [k for k in self.archive_keys if self._find(k) is None]
        if missing:
            raise self._missing_error(missing)
        return {k: self._find(k) for k in self.archive_keys}

    # -- decoding and cache ------------------------------------------------------------------

    def _cache_path(self, archive: Path, digest: str) -> Path:
        stem = archive.name.removesuffix(".zip")
        name = f"{stem}-{self.image_size}px-{digest[:16]}-v{DECODER_VERSION}.pt"
        return self.cache_dir / "omniglot" / name

    def _decoded(self, archive: Path) -> dict:
        """{"images": uint8 [M, 1, S, S], "labels": long [M], "characters": [names]}, cached."""
        digest = file_sha256(archive)
        _check_known_checksum(archive, digest)
        path = self._cache_path(archive, digest)
        size = self.image_size

        def is_valid(data: object) -> bool:
            if not isinstance(data, dict):
                return False
            images, labels, names = data.get("images"), data.get("labels"), data.get("characters")
            return (
                isinstance(images, torch.Tensor)
                and images.dtype == torch.uint8
                and images.ndim == 4
                and tuple(images.shape[1:]) == (1, size, size)
                and isinstance(labels, torch.Tensor)
                and labels.dtype == torch.long
                and labels.shape == images.shape[:1]
                and isinstance(names, list)
                and len(names) > 0
                and all(isinstance(n, str) for n in names)
                and int(labels.min()) >= 0
                and int(labels.max()) < len(names)
            )

        cached = load_cache(path, is_valid, "Omniglot")
        if cached is not None:
            return cached
        logger.info("Decoding %s at %d px into %s", archive, size, path)
        data = decode_archive(archive, size)
        atomic_save(data, path)
        return data

    def prepare(self) -> None:
        """Download what is missing (if allowed), then decode and cache every archive."""
        for archive in self._archives(allow_download=True).values():
            self._decoded(archive)

    # -- splits ------------------------------------------------------------------------------

    def characters(self) -> dict[str, tuple[str, torch.Tensor]]:
        """``{"alphabet/characterNN": (archive key, uint8 images [n, 1, S, S])}`` in protocol
        order (archives in ``archive_keys`` order, then alphabet and character names); a
        character found in two archives is kept once if its images are identical."""
        out: dict[str, tuple[str, torch.Tensor]] = {}
        for key, archive in self._archives(allow_download=False).items():
            data = self._decoded(archive)
            counts = torch.bincount(data["labels"], minlength=len(data["characters"]))
            order = torch.argsort(data["labels"], stable=True)
            groups = torch.split(data["images"][order], counts.tolist())
            for name, images in zip(data["characters"], groups):
                if name in out:
                    first_key, first = out[name]
                    if first.shape != images.shape or not torch.equal(first, images):
                        raise DataError(
                            f"Omniglot character {name} is in both {ARCHIVES[first_key]} and "
                            f"{ARCHIVES[key]} with different images; cannot count it once"
                        )
                    continue
                out[name] = (key, images)
        return out

    def assign(self, characters: dict[str, tuple[str, torch.Tensor]]) -> dict[str, list[str]]:
        """Character names per split ('train', 'val', 'test'), by ``self.split``'s rule."""
        names = list(characters)
        if self.split == "standard":
            return self._assign_standard(names)
        if self.split == "lake":
            background = [n for n in names if characters[n][0] != "evaluation"]
            test = [n for n in names if characters[n][0] == "evaluation"]
            train, val = self._carve_validation(background)
            return {"train": train, "val": val, "test": test}
        alphabets: dict[str, list[str]] = {}
        for name in names:
            alphabets.setdefault(_alphabet(name), []).append(name)
        return self._assign_alphabets(alphabets)

    def _assign_standard(self, names: list[str]) -> dict[str, list[str]]:
        held_out = STANDARD_TEST_CHARACTERS + STANDARD_VAL_CHARACTERS
        if len(names) <= held_out:
            raise DataError(
                f"split='standard' holds out {STANDARD_TEST_CHARACTERS} test and "
                f"{STANDARD_VAL_CHARACTERS} validation characters, but the archives "
                f"{[ARCHIVES[k] for k in self.archive_keys]} have only {len(names)} characters"
            )
        splits = {
            "train": names[: len(names) - held_out],
            "val": names[len(names) - held_out : len(names) - STANDARD_TEST_CHARACTERS],
            "test": names[len(names) - STANDARD_TEST_CHARACTERS :],
        }
        _log_shared_alphabets(splits)
        return splits

    def _carve_validation(self, background: list[str]) -> tuple[list[str], list[str]]:
        """Whole alphabets from the end of ``background`` until validation holds at least the
        standard protocol's share (172/1200) of the characters."""
        target = math.ceil(len(background) * STANDARD_VAL_CHARACTERS / STANDARD_TRAIN_CHARACTERS)
        alphabets = list(dict.fromkeys(_alphabet(n) for n in background))
        val_alphabets: list[str] = []
        held = 0
        for alphabet in reversed(alphabets[1:]):  # the first alphabet always stays in training
            if held >= target:
                break
            val_alphabets.append(alphabet)
            held += sum(_alphabet(n) == alphabet for n in background)
        if not val_alphabets:
            raise DataError(
                "split='lake' carves validation alphabets out of the background set, but "
                f"{[ARCHIVES[k] for k in BACKGROUNDS[self.background]]} hold only "
                f"{len(alphabets)} alphabet(s)"
            )
        logger.info("Omniglot validation alphabets (split=lake): %s", sorted(val_alphabets))
        val = set(val_alphabets)
        return (
            [n for n in background if _alphabet(n) not in val],
            [n for n in background if _alphabet(n) in val],
        )

    def _assign_alphabets(self, alphabets: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [a for a in self.val_alphabets + self.test_alphabets if a not in alphabets]
        if unknown:
            raise DataError(
                f"data.source.val_alphabets/test_alphabets name alphabet(s) {unknown} that are "
                f"not in {[ARCHIVES[k] for k in self.archive_keys]}; available: {list(alphabets)}"
            )
        held = set(self.val_alphabets) | set(self.test_alphabets)
        train = [n for a, chars in alphabets.items() if a not in held for n in chars]
        if not train:
            raise DataError(
                "data.source.val_alphabets and test_alphabets hold out every alphabet of "
                f"{[ARCHIVES[k] for k in self.archive_keys]}; none is left for training"
            )
        return {
            "train": train,
            "val": [n for a in self.val_alphabets for n in alphabets[a]],
            "test": [n for a in self.test_alphabets for n in alphabets[a]],
        }

    def load(self) -> dict[str, ClassPool]:
        characters = self.characters()
        pools = {}
        for split, names in self.assign(characters).items():
            pools[split] = self._pool([characters[n][1] for n in names], names)
            logger.info(
                "Omniglot %s: %d characters in %d alphabets -> %d classes",
                split,
                len(names),
                len({_alphabet(n) for n in names}),
                pools[split].n_classes,
            )
        return pools

    def _pool(self, images: list[torch.Tensor], names: list[str]) -> ClassPool:
        counts = torch.tensor([len(x) for x in images], dtype=torch.long)
        data = torch.cat(images)
        labels = torch.repeat_interleave(torch.arange(len(names)), counts)
        if not self.rotations:
            return ClassPool.from_labels(data, labels, names, [_alphabet(n) for n in names])
        # Class 4c + r is character c rotated by r * 90 degrees counter-clockwise.
        data = torch.cat([torch.rot90(data, r, dims=(-2, -1)) for r in range(4)])
        labels = torch.cat([labels * 4 + r for r in range(4)])
        class_names = [f"{n}/rot{90 * r}" for n in names for r in range(4)]
        groups = [f"{_alphabet(n)}/rot{90 * r}" for n in names for r in range(4)]
        return ClassPool.from_labels(data, labels, class_names, groups)


def _natural(text: str) -> tuple:
    """Sort key that orders digit runs by value: character9 before character10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _alphabet(character: str) -> str:
    return character.rsplit("/", 1)[0]


def _check_known_checksum(archive: Path, digest: str) -> None:
    expected = KNOWN_SHA256.get(archive.name)
    if expected is None or digest == expected:
        return
    if archive.resolve().parent == BUNDLED_DIR.resolve():
        advice = (
            "It is the copy that ships with leo-lightning: reinstall the package "
            "(pip install --force-reinstall leo-lightning), or in a checkout restore it with "
            f"git checkout -- {archive.name}."
        )
    else:
        advice = (
            "Delete it to use the copy that ships with leo-lightning "
            f"({BUNDLED_DIR / archive.name}), or download it again."
        )
    raise DataError(
        f"Omniglot archive {archive} has SHA-256 {digest}, expected {expected}: the file is "
        f"damaged or not the original. {advice}"
    )


def _log_shared_alphabets(splits: dict[str, list[str]]) -> None:
    seen: dict[str, set[str]] = {}
    for split, names in splits.items():
        for name in names:
            seen.setdefault(_alphabet(name), set()).add(split)
    for alphabet, where in seen.items():
        if len(where) > 1:
            logger.info("Omniglot alphabet %s is split across %s", alphabet, sorted(where))


def decode_archive(archive: Path, image_size: int) -> dict:
    """Decode every ``<alphabet>/<character>/<image>.png`` of an Omniglot zip archive.

    Returns {"images": uint8 [M, 1, S, S] (inverted: ink 255), "labels": long [M] (index into
    "characters"), "characters": "alphabet/character" names}. Images and characters are in
    (alphabet, character, file) name order, digit runs compared by value. Raises ValueError
    naming the archive (unreadable zip, no images in the expected layout) or the archive member
    (corrupt data, undecodable PNG).
    """
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"cannot read Omniglot archive {archive}: {error}") from error
    with handle:
        entries = []
        for info in handle.infolist():
            parts = PurePosixPath(info.filename).parts
            if info.is_dir() or "__MACOSX" in parts or parts[-1].startswith("."):
                continue
            if not parts[-1].lower().endswith(".png"):
                continue
            if len(parts) < 3:
                raise DataError(
                    f"{archive}: image {info.filename} is not in the Omniglot layout "
                    "<alphabet>/<character>/<image>.png"
                )
            entries.append((parts[-3], parts[-2], parts[-1], info))
        if not entries:
            raise DataError(
                f"{archive} holds no PNG images in the Omniglot layout "
                "<set>/<alphabet>/<character>/<image>.png"
            )
        entries.sort(key=lambda e: tuple(map(_natural, e[:3])))
        characters = list(dict.fromkeys(f"{a}/{c}" for a, c, _, _ in entries))
        ids = {name: i for i, name in enumerate(characters)}
        images = np.empty((len(entries), 1, image_size, image_size), dtype=np.uint8)
        labels = torch.empty(len(entries), dtype=torch.long)
        for i, (alphabet, character, _, info) in enumerate(entries):
            member = f"{archive}:{info.filename}"
            try:
                raw = handle.read(info)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
                raise DataError(f"cannot read {member}: {error}") from error
            images[i] = decode_image(raw, image_size, channels=1, invert=True, name=member)
            labels[i] = ids[f"{alphabet}/{character}"]
    return {"images": torch.from_numpy(images), "labels": labels, "characters": characters}
