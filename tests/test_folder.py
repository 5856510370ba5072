"""Image folders as few-shot datasets (leo_lightning.data.folder), on folders the tests write."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leo_lightning.data import EpisodicDataModule, files
from leo_lightning.data.folder import FolderSource

SIZE = 8


def colour(class_index: int, image_index: int) -> tuple[int, int, int]:
    """A distinct flat RGB colour per (class, image), so images can be traced back."""
    return (10 + 20 * class_index, 10 + 40 * image_index, 200)


def write_class(folder: Path, class_index: int, n_images: int, mode: str = "RGB", size=SIZE):
    folder.mkdir(parents=True)
    for i in range(n_images):
        image = Image.new("RGB", (size, size), colour(class_index, i)).convert(mode)
        suffix = ".png" if i % 2 == 0 else ".jpg"
        image.save(folder / f"img{i}{suffix}", quality=100)


def write_flat(root: Path, n_classes: int, n_images: int = 4) -> Path:
    for c in range(n_classes):
        write_class(root / f"class{c:02d}", c, n_images)
    return root


def source(root: Path, **kwargs) -> FolderSource:
    kwargs.setdefault("image_size", SIZE)
    kwargs.setdefault("cache_dir", root.parent / "cache")
    return FolderSource(root, **kwargs)


def datamodule(src: FolderSource, n_way: int = 2, k_shot: int = 1, n_query: int = 2):
    return EpisodicDataModule(
        src,
        image_size=src.image_size,
        channels=src.channels,
        n_way=n_way,
        k_shot=k_shot,
        n_query=n_query,
    )


def test_a_flat_folder_is_split_by_class_with_the_seed(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=10)

    pools = source(root, val_fraction=0.2, test_fraction=0.3, seed=1).load()
    again = source(root, val_fraction=0.2, test_fraction=0.3, seed=1).load()
    other = source(root, val_fraction=0.2, test_fraction=0.3, seed=2).load()

    assert {s: p.n_classes for s, p in pools.items()} == {"train": 5, "val": 2, "test": 3}
    names = [set(p.class_names) for p in pools.values()]
    assert set.union(*names) == {f"class{c:02d}" for c in range(10)}
    assert sum(map(len, names)) == 10, "every class is in exactly one split"
    assert all(pools[s].class_names == again[s].class_names for s in pools)
    assert any(pools[s].class_names != other[s].class_names for s in pools)


def test_train_val_test_subfolders_are_used_as_the_splits(tmp_path):
    root = tmp_path / "images"
    for split, classes in [("train", [0, 1, 2]), ("val", [3, 4]), ("test", [5, 6])]:
        for c in classes:
            write_class(root / split / f"c{c}", c, 3)

    pools = source(root).load()

    assert pools["train"].class_names == ("c0", "c1", "c2")
    assert pools["val"].class_names == ("c3", "c4") and pools["test"].class_names == ("c5", "c6")


def test_images_are_converted_to_the_channels_and_resized(tmp_path):
    root = tmp_path / "images"
    write_class(root / "train" / "grey", 0, 2, mode="L", size=20)
    write_class(root / "val" / "rgb", 1, 2, mode="RGB", size=30)
    write_class(root / "test" / "rgb2", 2, 2, mode="RGB", size=12)

    rgb = source(root, image_size=10, channels=3).load()
    grey = source(root, image_size=10, channels=1).load()

    assert rgb["train"].data.shape == (2, 3, 10, 10) and rgb["val"].data.dtype == torch.uint8
    assert torch.equal(rgb["train"].data[:, 0], rgb["train"].data[:, 2]), "grey -> equal RGB"
    assert grey["val"].data.shape == (2, 1, 10, 10)
    r, g, b = colour(1, 0)
    expected = round(0.299 * r + 0.587 * g + 0.114 * b)
    assert abs(int(grey["val"].data[0, 0, 5, 5]) - expected) <= 1


def test_invert_makes_dark_ink_bright(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=3)

    plain = source(root, channels=1, val_fraction=0.34, test_fraction=0.34).load()
    inverted = source(root, channels=1, val_fraction=0.34, test_fraction=0.34, invert=True).load()

    assert torch.equal(inverted["train"].data, 255 - plain["train"].data)


def test_episodes_only_draw_from_their_own_split(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=9, n_images=3)
    dm = datamodule(source(root, val_fraction=0.34, test_fraction=0.34, channels=3), n_way=2)
    dm.setup()
    owner = {img.numpy().tobytes(): s for s, p in dm.pools.items() for img in p.data}

    for split, loader in [("val", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        for episode in loader:
            for image in torch.cat([episode.support_x, episode.query_x], 1).flatten(0, 1):
                assert owner[image.numpy().tobytes()] == split


def test_a_split_with_fewer_classes_than_n_way_raises_naming_split_and_counts(tmp_path):
    root = tmp_path / "images"
    for split, n in [("train", 5), ("val", 2), ("test", 5)]:
        for c in range(n):
            write_class(root / split / f"{split}{c}", c, 4)

    with pytest.raises(ValueError, match=r"split 'val' has 2 classes but data.n_way=3"):
        datamodule(source(root), n_way=3).setup()


def test_a_class_with_too_few_images_raises_naming_split_class_and_count(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        for c in range(3):
            write_class(root / split / f"{split}{c}", c, 2 if (split, c) == ("test", 1) else 4)

    with pytest.raises(
        ValueError, match=r"split 'test'.*k_shot \+ data.n_query = 3.*'test1' \(2\)"
    ):
        datamodule(source(root), n_way=2, k_shot=1, n_query=2).setup()


def test_an_undecodable_image_raises_naming_the_file(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=4)
    broken = root / "class02" / "img9.png"
    broken.write_bytes(b"not a png")

    with pytest.raises(ValueError, match=f"cannot decode image {broken}"):
        source(root).prepare()


def test_other_files_and_hidden_entries_are_ignored(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=4, n_images=3)
    (root / "class00" / "notes.txt").write_text("not an image")
    (root / "class00" / ".hidden.png").write_bytes(b"junk")
    (root / ".thumbnails").mkdir()

    pools = source(root, val_fraction=0.25, test_fraction=0.25).load()

    assert sum(p.n_classes for p in pools.values()) == 4
    assert all(int(p.counts.min()) == 3 for p in pools.values())


def test_a_class_in_two_split_folders_raises_naming_it(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        write_class(root / split / f"only_{split}", 0, 2)
    write_class(root / "test" / "only_train", 1, 2)

    with pytest.raises(ValueError, match="class 'only_train' is in both split 'train' and split"):
        source(root).load()


def test_a_missing_split_folder_raises_naming_it(tmp_path):
    root = tmp_path / "images"
    write_class(root / "train" / "a", 0, 2)
    write_class(root / "test" / "b", 1, 2)

    with pytest.raises(FileNotFoundError, match=r"split folder\(s\) \['val'\] not found"):
        source(root).load()


def test_a_split_left_without_classes_raises_naming_it(tmp_path):
    root = write_flat(tmp_path / "images", n_classes=3)

    with pytest.raises(ValueError, match="split 'val' .* has no classes"):
        source(root, val_fraction=0.1, test_fraction=0.34).load()


def test_a_missing_root_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        source(tmp_path / "absent").prepare()


def test_decoded_images_are_cached_and_rebuilt_when_the_files_change(tmp_path, monkeypatch):
    root = write_flat(tmp_path / "images", n_classes=5)
    src = source(root)
    src.prepare()
    assert len(list((tmp_path / "cache" / "folder").glob("*.pt"))) == 1

    decoded = []
    real = files.decode_image
    monkeypatch.setattr(
        "leo_lightning.data.folder.decode_image", lambda *a: decoded.append(a) or real(*a)
    )
    src.load()
    assert decoded == [], "the second load reads the cache"

    write_class(root / "class99", 9, 4)
    assert sum(p.n_classes for p in src.load().values()) == 6
    assert len(decoded) == 6 * 4


def test_a_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, caplog):
    root = write_flat(tmp_path / "images", n_classes=5)
    expected = source(root).load()
    (cache_file,) = (tmp_path / "cache" / "folder").glob("*.pt")
    cache_file.write_bytes(b"garbage")

    with caplog.at_level(logging.WARNING):
        rebuilt = source(root).load()

    assert torch.equal(rebuilt["train"].data, expected["train"].data)
    assert "unreadable" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"split": "fold"}, "data.source.split='fold'"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "leaves no class for training"),
        ({"test_fraction": 1.5}, r"must be in \[0, 1\)"),
    ],
)
def test_invalid_settings_fail_when_the_source_is_built(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        source(tmp_path, **kwargs)


def test_decoded_pixels_match_the_files(tmp_path):
    root = tmp_path / "images"
    for split, c in [("train", 0), ("val", 1), ("test", 2)]:
        write_class(root / split / f"c{c}", c, 1)

    pools = source(root, channels=3).load()

    pixel = pools["val"].data[0, :, 0, 0].tolist()
    assert pixel == list(colour(1, 0))
    assert np.asarray(pools["test"].data[0, 2]).min() == 200
