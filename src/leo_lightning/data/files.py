"""Shared pieces of the file-based sources: decoding one image, and the on-disk tensor cache.

Images are decoded with Pillow into uint8 arrays [C, S, S] (C = 1 grayscale or 3 RGB). Resizing
uses Pillow's bilinear filter, which widens its support when shrinking, so downscaling is
antialiased (a 105 px Omniglot stroke becomes a soft grey line at 28 px rather than a broken one).

Caches follow the glyph cache's rules: written to a unique temp file in the target directory,
then moved into place with ``os.replace`` (a reader, or a second rank building the same cache,
only ever sees a missing or a complete file); read with ``torch.load(weights_only=True)``; a
corrupt or mismatching file is logged and rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from leo_lightning.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["atomic_save", "decode_image", "file_sha256", "load_cache"]

_RESAMPLE = Image.Resampling.BILINEAR

# Grayscale modes with more than 8 bits: 16-bit PNG/TIFF open as "I;16*"; "I" (32-bit) is what
# older Pillow and 16-bit TIFFs give, with the same 0..65535 range. Pillow's convert("L") clips
# them at 255 instead of scaling (a mid-grey 16-bit image became white).
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """A 16-bit grayscale image as mode "L", scaled by value range: 0..65535 -> 0..255."""
    values = np.asarray(image).astype(np.float64)  # uint16, big-endian uint16 or int32
    scaled = np.clip(values, 0, 65535) * (255 / 65535)
    return Image.fromarray(np.rint(scaled).astype(np.uint8))


def decode_image(
    source: bytes | os.PathLike | str,
    image_size: int,
    channels: int = 1,
    invert: bool = False,
    name: str | None = None,
) -> np.ndarray:
    """Decode a PNG/JPEG (bytes or a path) into a uint8 array [channels, image_size, image_size].

    16-bit grayscale is scaled to 8 bits by its value range (0..65535 -> 0..255). Transparent
    pixels are composited onto white first (a transparent PNG's hidden colour is arbitrary).
    ``invert`` maps v -> 255 - v after conversion. Any decoding failure raises a ValueError
    that names the file (``name``, or the path).
    """
    label = name if name is not None else str(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(handle) as opened:
            opened.load()
            image = _to_eight_bit(opened) if opened.mode in _SIXTEEN_BIT_MODES else opened
            if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image.alpha_composite(rgba)
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), _RESAMPLE)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... by format
        raise DataError(f"cannot decode image {label}: {error}") from error
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    if invert:
        array = 255 - array
    return np.ascontiguousarray(array)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (names a cache after its source's content)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_save(data: object, path: Path) -> None:
    """``torch.save`` to a unique temp file beside ``path``, then ``os.replace`` it into place.

    The temp file is opened with mode "xb" (not mkstemp) so the cache gets the usual umask
    permissions and can be shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as handle:
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_cache(path: Path, is_valid: Callable[[object], bool], what: str) -> object | None:
    """The cached object at ``path``, or None (missing, unreadable or failing ``is_valid``, the
    last two logged as warnings so the caller rebuilds it)."""
    if not path.exists():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip container, bad pickle, ...
        logger.warning("%s cache %s is unreadable (%s); rebuilding it", what, path, error)
        return None
    if not is_valid(data):
        logger.warning("%s cache %s does not match its source; rebuilding it", what, path)
        return None
    logger.info("Loading %s from cache %s", what, path)
    return data
