"""Omniglot from its zip archives (leo_lightning.data.omniglot), on small generated archives with
the real layout <set>/<alphabet>/<characterNN>/<NNNN_DD>.png, 1-bit black strokes on white."""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from leo_lightning.config.schemas import register_configs
from leo_lightning.data import EpisodicDataModule, omniglot
from leo_lightning.data.omniglot import OmniglotSource

register_configs()


@pytest.fixture(autouse=True)
def _synthetic_archives_only(monkeypatch, tmp_path):
    """These tests build small fake archives under the real names, so the package's bundled
    minimal sets and their checksums are out of the way here (test_omniglot_bundled.py tests
    those)."""
    monkeypatch.setattr(omniglot, "BUNDLED_DIR", tmp_path / "no-bundled-archives")
    monkeypatch.setattr(omniglot, "KNOWN_SHA256", {})


SIZE = 12  # generated drawings are SIZE x SIZE, and read at SIZE: no resizing, exact pixels


def drawing(alphabet: str, character: str, index: int, size: int = SIZE) -> np.ndarray:
    """A random 1-bit pattern unique to (alphabet, character, index): True = white paper."""
    seed = zlib.crc32(f"{alphabet}/{character}/{index}".encode())
    return np.random.default_rng(seed).random((size, size)) > 0.3


def png(paper: np.ndarray) -> bytes:
    image = Image.fromarray(paper.astype(np.uint8) * 255).convert("1")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_archive(
    path: Path, alphabets: dict[str, int], drawings: int = 3, images=drawing
) -> dict[str, list[np.ndarray]]:
    """An Omniglot-layout zip; returns {"alphabet/characterNN": [1-bit drawings]}."""
    written = {}
    with zipfile.ZipFile(path, "w") as archive:
        top = path.stem
        archive.writestr(f"{top}/", "")
        for alphabet, n_characters in alphabets.items():
            for c in range(1, n_characters + 1):
                character = f"character{c:02d}"
                folder = f"{top}/{alphabet}/{character}"
                written[f"{alphabet}/{character}"] = []
                for d in range(1, drawings + 1):
                    paper = images(alphabet, character, d)
                    archive.writestr(f"{folder}/{1000 + c:04d}_{d:02d}.png", png(paper))
                    written[f"{alphabet}/{character}"].append(paper)
    return written


def ink(paper: np.ndarray) -> torch.Tensor:
    """The expected decoded image: inverted, ink 255 on 0, as [1, H, W] uint8."""
    return torch.from_numpy(np.where(paper, 0, 255).astype(np.uint8))[None]


def source(root: Path, **kwargs) -> OmniglotSource:
    kwargs.setdefault("image_size", SIZE)
    kwargs.setdefault("cache_dir", root / "cache")
    return OmniglotSource(root, **kwargs)


def characters_of(pool) -> set[str]:
    return {name.split("/rot")[0] for name in pool.class_names}


@pytest.fixture
def small_root(tmp_path) -> Path:
    """Two minimal-style archives sharing Greek and Latin, like the real small1 and small2."""
    write_archive(
        tmp_path / "images_background_small1.zip", {"Balinese": 3, "Greek": 2, "Latin": 2}
    )
    write_archive(tmp_path / "images_background_small2.zip", {"Greek": 2, "Latin": 2, "Tagalog": 4})
    return tmp_path


@pytest.fixture
def full_root(tmp_path) -> Path:
    """Background (3 alphabets, 300 characters) and evaluation (5 alphabets, 500 characters),
    one drawing each: enough characters for the standard split's 423 + 172 held out."""
    background = {"Arcadian": 100, "Braille": 100, "Cyrillic": 100}
    evaluation = {"Angelic": 100, "Kannada": 100, "Mongolian": 100, "Tengwar": 100, "Tibetan": 100}
    write_archive(tmp_path / "images_background.zip", background, drawings=1)
    write_archive(tmp_path / "images_evaluation.zip", evaluation, drawings=1)
    return tmp_path


# ------------------------------------------------------------------------ reading the archives


def test_loader_reads_one_class_per_character_with_its_drawings_inverted(small_root):
    written = write_archive(
        small_root / "images_background.zip", {"Alpha": 2, "Beta": 3, "Gamma": 2}
    )
    pools = source(
        small_root,
        rotations=False,
        split="alphabets",
        val_alphabets=["Beta"],
        test_alphabets=["Gamma"],
    ).load()

    assert pools["train"].class_names == ("Alpha/character01", "Alpha/character02")
    for split, pool in pools.items():
        assert pool.data.dtype == torch.uint8 and pool.example_shape == (1, SIZE, SIZE), split
        for c, name in enumerate(pool.class_names):
            rows = pool.index[c, : pool.counts[c]]
            expected = torch.stack([ink(p) for p in written[name]])
            assert torch.equal(pool.data[rows], expected), name


def test_images_are_resized_with_antialiasing_to_image_size_with_bright_ink(tmp_path):
    def square(alphabet, character, index):  # a black square on white, at the native 105 px
        paper = np.ones((105, 105), dtype=bool)
        paper[30:75, 30:75] = False
        return paper

    write_archive(tmp_path / "images_background.zip", {"A": 2, "B": 1, "C": 1}, images=square)
    pools = source(
        tmp_path,
        image_size=28,
        rotations=False,
        split="alphabets",
        val_alphabets=["B"],
        test_alphabets=["C"],
    ).load()

    image = pools["train"].data[0, 0]
    assert image.shape == (28, 28)
    assert image[14, 14] == 255 and image[0, 0] == 0 and image[27, 27] == 0
    assert ((image > 0) & (image < 255)).any(), "the square's edges are antialiased"


def test_rotations_make_four_classes_per_character_holding_the_rotated_drawings(small_root):
    written = write_archive(
        small_root / "images_background.zip", {"Alpha": 2, "Beta": 1, "Gamma": 1}
    )
    pool = source(
        small_root, split="alphabets", val_alphabets=["Beta"], test_alphabets=["Gamma"]
    ).load()["train"]

    assert pool.n_classes == 4 * 2
    for c, name in enumerate(pool.class_names):
        character, rotation = name.split("/rot")
        rows = pool.index[c, : pool.counts[c]]
        upright = torch.stack([ink(p) for p in written[character]])
        expected = torch.rot90(upright, int(rotation) // 90, dims=(-2, -1))
        assert torch.equal(pool.data[rows], expected), name


# -------------------------------------------------------------------------------------- splits


def test_standard_split_holds_out_the_last_423_characters_for_test_and_172_for_validation(
    full_root,
):
    src = source(full_root, rotations=False)
    pools = src.load()

    sizes = {split: pool.n_classes for split, pool in pools.items()}
    assert sizes == {"train": 800 - 423 - 172, "val": 172, "test": 423}
    # Order: background then evaluation, alphabets and characters by name; test is the tail.
    assert characters_of(pools["test"]) == {
        f"{a}/character{c:02d}"
        for a, first in [
            ("Angelic", 78),
            ("Kannada", 1),
            ("Mongolian", 1),
            ("Tengwar", 1),
            ("Tibetan", 1),
        ]
        for c in range(first, 101)
    }
    assert characters_of(pools["val"]) == {
        f"{a}/character{c:02d}"
        for a, cs in [("Cyrillic", range(6, 101)), ("Angelic", range(1, 78))]
        for c in cs
    }


@pytest.mark.parametrize(
    ("split", "kwargs"),
    [
        ("standard", {}),
        ("lake", {}),
        ("alphabets", {"val_alphabets": ["Braille"], "test_alphabets": ["Angelic", "Tibetan"]}),
    ],
)
def test_splits_are_class_disjoint_and_all_rotations_of_a_character_share_its_split(
    full_root, split, kwargs
):
    if split == "alphabets":  # held-out alphabets come from the background archive(s) only
        write_archive(
            full_root / "images_background.zip",
            {"Arcadian": 5, "Braille": 5, "Angelic": 5, "Tibetan": 5},
            drawings=1,
        )
    pools = source(full_root, split=split, **kwargs).load()

    seen: dict[str, str] = {}
    for name, pool in pools.items():
        assert len(set(pool.class_names)) == pool.n_classes
        for character in characters_of(pool):
            assert character not in seen, f"{character} in {seen.get(character)} and {name}"
            seen[character] = name
            rotations = {c for c in pool.class_names if c.startswith(character + "/rot")}
            assert len(rotations) == 4, character


def test_lake_split_trains_on_background_and_tests_on_evaluation_with_whole_val_alphabets(
    full_root,
):
    pools = source(full_root, split="lake", rotations=False).load()

    alphabets = {s: {n.split("/")[0] for n in p.class_names} for s, p in pools.items()}
    assert alphabets["test"] == {"Angelic", "Kannada", "Mongolian", "Tengwar", "Tibetan"}
    assert pools["test"].n_classes == 500
    # ceil(300 * 172 / 1200) = 43 characters: the last background alphabet (100) suffices.
    assert alphabets["val"] == {"Cyrillic"} and pools["val"].n_classes == 100
    assert alphabets["train"] == {"Arcadian", "Braille"}


def test_alphabets_split_holds_out_the_named_alphabets_whole(small_root):
    pools = source(
        small_root,
        background="small",
        split="alphabets",
        val_alphabets=["Tagalog"],
        test_alphabets=["Balinese"],
    ).load()

    alphabets = {s: {n.split("/")[0] for n in characters_of(p)} for s, p in pools.items()}
    assert alphabets == {"train": {"Greek", "Latin"}, "val": {"Tagalog"}, "test": {"Balinese"}}
    assert pools["val"].n_classes == 4 * 4 and pools["test"].n_classes == 3 * 4


def test_episodes_only_draw_from_their_own_split(small_root):
    src = source(
        small_root,
        background="small",
        split="alphabets",
        val_alphabets=["Tagalog"],
        test_alphabets=["Balinese"],
    )
    dm = EpisodicDataModule(
        src,
        image_size=SIZE,
        channels=1,
        n_way=3,
        k_shot=1,
        n_query=2,
        meta_batch_size=2,
        val_episodes=5,
        test_episodes=5,
    )
    dm.setup()
    owner = {}
    for split, pool in dm.pools.items():
        for image in pool.data:
            owner[image.numpy().tobytes()] = split

    for split, loader in [("val", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        for episode in loader:
            for image in torch.cat([episode.support_x, episode.query_x], 1).flatten(0, 1):
                assert owner[image.numpy().tobytes()] == split
    stream = iter(dm.train_dataloader())
    for _ in range(5):
        episode = next(stream)
        for image in torch.cat([episode.support_x, episode.query_x], 1).flatten(0, 1):
            assert owner[image.numpy().tobytes()] == "train"


# ---------------------------------------------------------------- the two minimal archives


def test_characters_in_both_minimal_archives_are_counted_once(small_root):
    characters = source(
        small_root,
        background="small",
        split="alphabets",
        val_alphabets=["Tagalog"],
        test_alphabets=["Balinese"],
    ).characters()

    assert len(characters) == 3 + 2 + 2 + 4
    assert characters["Greek/character01"][0] == "small1", "kept from the first archive"


def test_a_shared_character_whose_images_differ_raises_naming_it(tmp_path):
    write_archive(tmp_path / "images_background_small1.zip", {"Greek": 2, "Korean": 1})

    def other(alphabet, character, index):
        return drawing(alphabet + "!", character, index)

    write_archive(
        tmp_path / "images_background_small2.zip", {"Greek": 2, "Sanskrit": 1}, images=other
    )
    src = source(
        tmp_path,
        background="small",
        split="alphabets",
        val_alphabets=["Korean"],
        test_alphabets=["Sanskrit"],
    )

    with pytest.raises(ValueError, match=r"Greek/character01 is in both images_background_small1"):
        src.load()


def test_an_unknown_held_out_alphabet_raises_listing_the_available_ones(small_root):
    src = source(
        small_root,
        background="small",
        split="alphabets",
        val_alphabets=["Klingon"],
        test_alphabets=["Greek"],
    )

    with pytest.raises(ValueError, match=r"\['Klingon'\].*available: \['Balinese', 'Greek'"):
        src.load()


# ------------------------------------------------------------------------------ errors, cache


def test_missing_archives_offline_raise_naming_the_files_and_where_to_put_them(tmp_path):
    src = source(tmp_path / "nothing")

    with pytest.raises(FileNotFoundError) as error:
        src.prepare()
    message = str(error.value)
    assert "images_background.zip, images_evaluation.zip" in message
    assert str((tmp_path / "nothing").resolve()) in message and "download=true" in message


def test_download_uses_torchvision_and_then_reads_its_omniglot_py_folder(tmp_path, monkeypatch):
    calls = []

    class FakeOmniglot:  # stands in for torchvision.datasets.Omniglot: no network in tests
        def __init__(self, root, background, download):
            calls.append((root, background, download))
            name = "images_background.zip" if background else "images_evaluation.zip"
            (Path(root) / "omniglot-py").mkdir(exist_ok=True)
            alphabets = {"Arcadian": 400, "Braille": 200} if background else {"Angelic": 100}
            write_archive(Path(root) / "omniglot-py" / name, alphabets, drawings=1)

    monkeypatch.setattr("torchvision.datasets.Omniglot", FakeOmniglot)
    src = source(tmp_path, rotations=False, download=True)
    src.prepare()

    assert calls == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert sum(p.n_classes for p in src.load().values()) == 700


def test_a_failed_download_raises_naming_the_files_and_the_cause(tmp_path, monkeypatch):
    def offline(root, background, download):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torchvision.datasets.Omniglot", offline)

    with pytest.raises(FileNotFoundError, match=r"images_background\.zip.*network is unreachable"):
        source(tmp_path, download=True).prepare()


def test_the_minimal_archives_cannot_be_downloaded_and_say_so(tmp_path):
    src = source(
        tmp_path,
        background="small1",
        split="alphabets",
        val_alphabets=["A"],
        test_alphabets=["B"],
        download=True,
    )

    with pytest.raises(FileNotFoundError, match="cannot download images_background_small1.zip"):
        src.prepare()


def test_a_corrupt_archive_raises_naming_it(small_root):
    bad = small_root / "images_background_small1.zip"
    bad.write_bytes(b"this is not a zip file")
    src = source(
        small_root,
        background="small1",
        split="alphabets",
        val_alphabets=["Greek"],
        test_alphabets=["Latin"],
    )

    with pytest.raises(ValueError, match=f"cannot read Omniglot archive {bad}"):
        src.prepare()


def test_an_undecodable_png_raises_naming_the_archive_member(tmp_path):
    path = tmp_path / "images_background.zip"
    write_archive(path, {"A": 1, "B": 1, "C": 1})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("images_background/B/character02/0002_01.png", b"\x89PNG broken")
    src = source(tmp_path, split="alphabets", val_alphabets=["B"], test_alphabets=["C"])

    with pytest.raises(ValueError, match=r"cannot decode image .*B/character02/0002_01\.png"):
        src.prepare()


def test_an_archive_without_the_layout_raises_naming_it(tmp_path):
    path = tmp_path / "images_background.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no images here")
    src = source(tmp_path, split="alphabets", val_alphabets=["B"], test_alphabets=["C"])

    with pytest.raises(ValueError, match=f"{path} holds no PNG images"):
        src.prepare()


def test_decoded_archives_are_cached_outside_a_read_only_root_and_reused(small_root, monkeypatch):
    cache = small_root / "elsewhere"
    src = source(
        small_root,
        background="small",
        split="alphabets",
        val_alphabets=["Tagalog"],
        test_alphabets=["Balinese"],
        cache_dir=cache,
    )
    src.prepare()

    assert not list(small_root.glob("*.pt")) and not (small_root / "omniglot").exists()
    files = sorted((cache / "omniglot").glob("*.pt"))
    assert [f.name.split("-")[:2] for f in files] == [
        ["images_background_small1", f"{SIZE}px"],
        ["images_background_small2", f"{SIZE}px"],
    ]

    def no_decoding(*args):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr("leo_lightning.data.omniglot.decode_archive", no_decoding)
    assert src.load()["train"].n_classes == 4 * 4


def test_a_corrupt_cache_is_rebuilt_with_a_warning(small_root, caplog):
    src = source(
        small_root,
        background="small1",
        split="alphabets",
        val_alphabets=["Greek"],
        test_alphabets=["Latin"],
    )
    expected = src.load()["train"].data
    (cache_file,) = (small_root / "cache" / "omniglot").glob("*.pt")
    cache_file.write_bytes(b"garbage")

    with caplog.at_level(logging.WARNING):
        rebuilt = src.load()["train"].data

    assert torch.equal(rebuilt, expected)
    assert "unreadable" in caplog.text and str(cache_file) in caplog.text


def test_a_replaced_archive_is_not_served_from_the_old_cache(small_root):
    src = source(
        small_root,
        background="small1",
        split="alphabets",
        val_alphabets=["Greek"],
        test_alphabets=["Latin"],
        rotations=False,
    )
    before = src.load()["train"].n_classes
    write_archive(
        small_root / "images_background_small1.zip", {"Balinese": 5, "Greek": 2, "Latin": 2}
    )

    assert (before, src.load()["train"].n_classes) == (3, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "vinyals"}, "data.source.split='vinyals'"),
        ({"background": "tiny"}, "data.source.background='tiny'"),
        ({"split": "alphabets"}, "needs data.source.val_alphabets"),
        ({"split": "lake", "val_alphabets": ["Greek"]}, "only used with"),
        ({"split": "alphabets", "val_alphabets": ["A"], "test_alphabets": ["A"]}, "in both"),
    ],
)
def test_invalid_settings_fail_when_the_source_is_built(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        source(tmp_path, **kwargs)


# ------------------------------------------------------------------------------ the configs


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(
    "name", ["omniglot_5w1s", "omniglot_5w5s", "omniglot_20w1s", "omniglot_20w5s"]
)
def test_standard_experiments_without_the_archives_fail_naming_them(name, tmp_path, monkeypatch):
    monkeypatch.setenv("LEO_DATA_DIR", str(tmp_path))
    datamodule = instantiate(compose_train(f"experiment={name}").data)

    with pytest.raises(FileNotFoundError, match="images_background.zip, images_evaluation.zip"):
        datamodule.prepare_data()
