"""decode_image on the image modes users' files come in: each decodes to the values it shows.

16-bit grayscale is scaled by its value range (not clipped to white); palette images take their
palette's colours; transparent pixels (RGBA, grayscale + alpha, palette transparency) are
composited onto white.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from leo_lightning.data.files import decode_image
from leo_lightning.data.folder import FolderSource

EIGHT_BIT = np.array([[0, 60, 123], [128, 200, 255], [1, 254, 77]], dtype=np.uint8)


def square(mode: str, row: list) -> Image.Image:
    """An n x n image of `mode` whose every row is `row` (decode_image makes images square)."""
    image = Image.new(mode, (len(row), len(row)))
    image.putdata(row * len(row))
    return image


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_is_scaled_by_value_range(fmt):
    sixteen_bit = Image.fromarray(EIGHT_BIT.astype(np.uint16) * 257)  # 255 -> 65535
    assert Image.open(io.BytesIO(encoded(sixteen_bit, fmt))).mode == "I;16"
    decoded = decode_image(encoded(sixteen_bit, fmt), 3)
    np.testing.assert_array_equal(decoded[0], EIGHT_BIT)


def test_32_bit_integer_grayscale_takes_the_16_bit_range():
    """Mode "I" (older Pillow's 16-bit PNG, 16-bit TIFF via some writers): 0..65535."""
    image = Image.fromarray(EIGHT_BIT.astype(np.int32) * 257)
    assert image.mode == "I"
    np.testing.assert_array_equal(decode_image(encoded(image, "TIFF"), 3)[0], EIGHT_BIT)


def test_16_bit_grayscale_becomes_equal_rgb_channels():
    sixteen_bit = Image.fromarray(EIGHT_BIT.astype(np.uint16) * 257)
    decoded = decode_image(encoded(sixteen_bit), 3, channels=3)
    for channel in decoded:
        np.testing.assert_array_equal(channel, EIGHT_BIT)


def test_a_mid_grey_16_bit_image_stays_mid_grey():
    """The reported case: a mean of 123 decoded to 254.6."""
    grey = Image.fromarray(np.full((8, 8), 123 * 257, dtype=np.uint16))
    assert decode_image(encoded(grey), 8).mean() == 123


def test_palette_image_takes_its_palette_colours():
    image = square("P", [0, 1])
    image.putpalette([10, 20, 30, 250, 128, 0])  # index 0, index 1
    rgb = decode_image(encoded(image), 2, channels=3)
    assert rgb[:, 0, :].T.tolist() == [[10, 20, 30], [250, 128, 0]]
    gray = decode_image(encoded(image), 2, channels=1)
    luma = np.asarray(square("RGB", [(10, 20, 30), (250, 128, 0)]).convert("L"))
    np.testing.assert_array_equal(gray[0], luma)


def test_palette_transparency_becomes_white():
    image = square("P", [0, 1])
    image.putpalette([0, 0, 0, 90, 90, 90])
    image.info["transparency"] = 0
    assert decode_image(encoded(image), 2)[0, 0].tolist() == [255, 90]


def test_rgba_is_composited_onto_white():
    image = square("RGBA", [(0, 0, 0, 0), (200, 100, 0, 255), (0, 0, 0, 102)])  # 0, 100, 40 %
    decoded = decode_image(encoded(image), 3, channels=3)
    assert decoded[:, 0, :].T.tolist() == [[255, 255, 255], [200, 100, 0], [153, 153, 153]]


def test_grayscale_with_alpha_is_composited_onto_white():
    image = square("LA", [(0, 0), (40, 255), (0, 102)])  # clear black, opaque grey, 40 % black
    assert decode_image(encoded(image), 3)[0, 0].tolist() == [255, 40, 153]


def test_a_folder_dataset_of_16_bit_pngs_keeps_their_grey_levels(tmp_path):
    for split in ("train", "val", "test"):
        folder = tmp_path / "images" / split / f"{split}_class"
        folder.mkdir(parents=True)
        for i, level in enumerate([30, 123]):
            grey = np.full((4, 4), level * 257, dtype=np.uint16)
            Image.fromarray(grey).save(folder / f"{i}.png")
    source = FolderSource(tmp_path / "images", image_size=4, channels=1, cache_dir=tmp_path)
    pools = source.load()
    assert pools["train"].data.flatten(1).float().mean(1).tolist() == [30, 123]
