"""A user's own images: a support folder with one subfolder per class, a query folder, and the
images decoded as the datasets store them (bright ink on a dark background).

What `leo-predict` and `LEO.load_images` read. Size and channels are the model's; a grayscale
image whose mean is above mid-grey (dark strokes on light paper) is inverted unless `invert`
says otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from leo_lightning.data.files import decode_image
from leo_lightning.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


def images_in(folder: Path, what: str) -> list[Path]:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(f"{what} {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def support_classes(support_dir: Path) -> dict[str, list[Path]]:
    if not support_dir.is_dir():
        raise DataError(f"support_dir={str(support_dir)!r} is not a directory")
    folders = sorted(p for p in support_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(
            f"support_dir={str(support_dir)!r} needs one subfolder per class and at least 2 "
            f"classes; found {len(folders)}"
        )
    return {folder.name: images_in(folder, "class folder") for folder in folders}


def query_images(query_dir: Path) -> list[tuple[Path, str | None]]:
    """The images to classify, each with its true class if the folder says it: the images in
    `query_dir` itself (no label) and those in its subfolders (labelled by the subfolder's
    name, as in the support folder: `query/<class>/<image>`)."""
    if not query_dir.is_dir():
        raise DataError(f"query_dir={str(query_dir)!r} is not a directory")
    flat = [p for p in query_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    queries: list[tuple[Path, str | None]] = [(p, None) for p in sorted(flat)]
    for folder in sorted(p for p in query_dir.iterdir() if p.is_dir()):
        if not folder.name.startswith("."):
            queries += [(p, folder.name) for p in images_in(folder, "query class folder")]
    if not queries:
        raise DataError(
            f"query_dir {query_dir} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}), "
            "neither itself nor in class subfolders"
        )
    return queries


def load_images(paths: list[Path], channels: int, size: int, invert: bool | None) -> torch.Tensor:
    """uint8 [n, C, size, size], bright ink on a dark background."""
    arrays = []
    for path in paths:
        array = decode_image(path, size, channels)
        light_background = channels == 1 and array.mean() > 127
        if light_background if invert is None else invert:
            array = 255 - array
        arrays.append(array)
    return torch.from_numpy(np.stack(arrays))
