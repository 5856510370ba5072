"""Tests for the procedurally generated glyph dataset (leo_lightning.data.glyphs)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from leo_lightning.data import glyphs
from leo_lightning.data.glyphs import load_glyph_splits, render_glyphs

N_CLASSES = 12
N_EXAMPLES = 6
SIZE = 28
SMALL_SPLITS = {"train": N_CLASSES, "val": N_CLASSES}
LOGGER = "leo_lightning.data.glyphs"


def _load(root: Path, **overrides: object) -> dict[str, torch.Tensor]:
    kwargs: dict[str, object] = {
        "image_size": SIZE,
        "seed": 0,
        "classes": SMALL_SPLITS,
        "examples_per_class": N_EXAMPLES,
    }
    kwargs.update(overrides)
    return load_glyph_splits(root, **kwargs)


def _features(images: torch.Tensor) -> torch.Tensor:
    """[C, E, 1, H, W] uint8 -> [C, E, H*W] float, lightly blurred.

    A 3x3 box blur makes plain pixel distances tolerant to the sub-pixel stroke jitter that
    distinguishes examples of one class, so they measure character shape.
    """
    c, e = images.shape[:2]
    x = images.float().div(255.0).flatten(0, 1)  # [C*E, 1, H, W]
    return F.avg_pool2d(x, 3, stride=1, padding=1).reshape(c, e, -1)


def _nearest_class_mean_accuracy(features: torch.Tensor, n_query_classes: int) -> float:
    """Leave-one-out nearest-class-mean accuracy of the examples of the first classes.

    ``features`` is [C, E, D]; every example of classes ``< n_query_classes`` is classified
    against all C class means, its own class mean computed without it.
    """
    c, e, _ = features.shape
    sums = features.sum(1)  # [C, D]
    correct = 0
    for cls in range(n_query_classes):
        for ex in range(e):
            means = sums / e
            means[cls] = (sums[cls] - features[cls, ex]) / (e - 1)
            dist = (features[cls, ex] - means).square().sum(-1)  # [C]
            correct += int(dist.argmin() == cls)
    return correct / (n_query_classes * e)


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "glyphs").iterdir())


# --------------------------------------------------------------------------- render_glyphs


def test_render_returns_uint8_images_with_bright_ink_on_black_background() -> None:
    images = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=0)

    assert images.shape == (N_CLASSES, N_EXAMPLES, 1, SIZE, SIZE)
    assert images.dtype == torch.uint8
    per_image = images.flatten(2)  # [C, E, H*W]
    assert (per_image.amax(-1) == 255).all(), "every example has fully inked stroke centres"
    ink_fraction = (per_image > 0).float().mean(-1)
    assert (ink_fraction > 0.03).all() and (ink_fraction < 0.45).all()
    border = torch.cat([images[..., 0, :], images[..., -1, :]], dim=-1)
    assert (border == 0).float().mean() > 0.9, "characters sit in the centre of the image"


def test_render_is_anti_aliased() -> None:
    images = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=0)

    intermediate = ((images > 0) & (images < 255)).float().mean()
    assert intermediate > 0.02, "stroke edges have intermediate intensities"


def test_render_is_bit_identical_for_the_same_arguments() -> None:
    first = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=3)
    second = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=3)

    assert torch.equal(first, second)


def test_render_differs_for_a_different_seed() -> None:
    first = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=3)
    second = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=4)

    assert not torch.equal(first, second)


def test_render_does_not_use_or_change_the_global_rng() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = render_glyphs(4, 3, SIZE, seed=0)
    assert torch.equal(torch.get_rng_state(), state)

    torch.manual_seed(456)
    assert torch.equal(render_glyphs(4, 3, SIZE, seed=0), first)


def test_render_does_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    reference = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=1)

    # Force one example per chunk and several row blocks per example.
    monkeypatch.setattr(glyphs, "_CHUNK_ELEMENTS", 4096)

    assert torch.equal(render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=1), reference)


def test_examples_are_closer_to_their_own_class_than_to_other_classes() -> None:
    features = _features(render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=0))

    accuracy = _nearest_class_mean_accuracy(features, N_CLASSES)

    chance = 1.0 / N_CLASSES
    assert accuracy > 0.7, f"nearest-class-mean accuracy {accuracy:.2f} (chance {chance:.2f})"


def test_examples_of_a_class_are_not_identical() -> None:
    images = render_glyphs(N_CLASSES, N_EXAMPLES, SIZE, seed=0)

    for cls in range(N_CLASSES):
        flat = images[cls].flatten(1)  # [E, H*W]
        assert torch.unique(flat, dim=0).shape[0] == N_EXAMPLES


def test_render_works_at_105_pixels() -> None:
    images = render_glyphs(3, 2, 105, seed=0)

    assert images.shape == (3, 2, 1, 105, 105)
    assert images.dtype == torch.uint8
    per_image = images.flatten(2)
    assert (per_image.amax(-1) == 255).all()
    ink_fraction = (per_image > 0).float().mean(-1)
    assert (ink_fraction > 0.03).all() and (ink_fraction < 0.45).all()


def test_render_works_at_the_minimum_image_size() -> None:
    images = render_glyphs(2, 2, 8, seed=0)

    assert images.shape == (2, 2, 1, 8, 8)
    assert images.flatten(2).amax(-1).min() > 0


# ------------------------------------------------------------------------ load_glyph_splits


def test_load_returns_requested_splits_in_order_with_expected_shapes(tmp_path: Path) -> None:
    splits = _load(tmp_path, classes={"val": 5, "train": 7, "test": 3})

    assert list(splits) == ["val", "train", "test"]
    for name, count in {"val": 5, "train": 7, "test": 3}.items():
        assert splits[name].shape == (count, N_EXAMPLES, 1, SIZE, SIZE)
        assert splits[name].dtype == torch.uint8


def test_splits_share_no_image(tmp_path: Path) -> None:
    splits = _load(tmp_path)

    train = splits["train"].flatten(0, 1).flatten(1)  # [C*E, H*W]
    val = splits["val"].flatten(0, 1).flatten(1)
    matches = (val[:, None, :] == train[None, :, :]).all(-1)  # [val images, train images]
    assert not matches.any()


def test_splits_contain_different_characters(tmp_path: Path) -> None:
    # If val re-drew the train characters (with other hands), its examples would be as close
    # to the matching train class mean as to their own (accuracy ~0.3-0.55 in that case).
    splits = _load(tmp_path)
    features = _features(torch.cat([splits["val"], splits["train"]]))

    accuracy = _nearest_class_mean_accuracy(features, n_query_classes=N_CLASSES)

    assert accuracy > 0.7, f"val examples matched train classes too often ({accuracy:.2f})"


def test_load_writes_one_cache_file_named_after_size_and_seed(tmp_path: Path) -> None:
    _load(tmp_path, seed=7)

    files = _cache_files(tmp_path)
    assert len(files) == 1, f"expected only the final cache file, found {files}"
    assert files[0].name.startswith("glyphs-28px-seed7-")
    assert files[0].suffix == ".pt"


def test_second_load_reads_the_cache_without_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _load(tmp_path)

    def fail(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("render_glyphs must not be called when the cache is valid")

    monkeypatch.setattr(glyphs, "render_glyphs", fail)
    second = _load(tmp_path)

    assert list(second) == list(first)
    for name in first:
        assert torch.equal(second[name], first[name])


def test_cached_splits_equal_freshly_rendered_ones(tmp_path: Path) -> None:
    cached = _load(tmp_path)
    _load(tmp_path)  # from cache

    fresh = _load(tmp_path / "elsewhere")
    for name in cached:
        assert torch.equal(cached[name], fresh[name])


def test_changed_parameters_use_a_different_cache_file(tmp_path: Path) -> None:
    _load(tmp_path)
    _load(tmp_path, examples_per_class=N_EXAMPLES + 1)
    _load(tmp_path, classes={"train": N_CLASSES, "val": N_CLASSES + 1})

    assert len(_cache_files(tmp_path)) == 3


def test_corrupt_cache_file_is_rerendered_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _load(tmp_path)
    (path,) = _cache_files(tmp_path)
    path.write_bytes(b"not a torch file")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        recovered = _load(tmp_path)

    assert any(r.levelno == logging.WARNING and str(path) in r.message for r in caplog.records)
    for name in expected:
        assert torch.equal(recovered[name], expected[name])
    reloaded = torch.load(path, weights_only=True)
    assert torch.equal(reloaded["train"], expected["train"])


def test_truncated_cache_file_is_rerendered(tmp_path: Path) -> None:
    expected = _load(tmp_path)
    (path,) = _cache_files(tmp_path)
    path.write_bytes(path.read_bytes()[:100])

    recovered = _load(tmp_path)

    for name in expected:
        assert torch.equal(recovered[name], expected[name])


def test_load_logs_rendering_then_cache_hit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _load(tmp_path)
        _load(tmp_path)

    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert len(messages) == 2
    assert messages[0].startswith("Rendering") and str(2 * N_CLASSES) in messages[0]
    assert messages[1].startswith("Loading")
    (path,) = _cache_files(tmp_path)
    assert all(str(path) in message for message in messages)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_classes": 0}, "n_classes"),
        ({"examples_per_class": 0}, "examples_per_class"),
        ({"image_size": 7}, "image_size"),
        ({"image_size": 28.0}, "image_size"),
        ({"seed": "0"}, "seed"),
    ],
)
def test_render_rejects_invalid_arguments(kwargs: dict[str, object], argument: str) -> None:
    arguments: dict[str, object] = {
        "n_classes": 2,
        "examples_per_class": 2,
        "image_size": SIZE,
        "seed": 0,
    }
    arguments.update(kwargs)

    with pytest.raises(ValueError, match=argument):
        render_glyphs(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"image_size": 4}, "image_size"),
        ({"examples_per_class": 0}, "examples_per_class"),
        ({"seed": None}, "seed"),
        ({"classes": {"train": 0}}, "classes"),
        ({"classes": {"train": True}}, "classes"),
        ({"classes": {"": 3}}, "classes"),
        ({"classes": {1: 3}}, "classes"),
        ({"classes": {}}, "classes"),
        ({"classes": [("train", 3)]}, "classes"),
    ],
)
def test_load_rejects_invalid_arguments(
    tmp_path: Path, kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(ValueError, match=argument):
        _load(tmp_path, **kwargs)
    assert not (tmp_path / "glyphs").exists(), "nothing is written for invalid arguments"


def test_load_rejects_a_root_that_is_not_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root"):
        load_glyph_splits(None)  # type: ignore[arg-type]
