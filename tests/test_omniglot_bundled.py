"""The minimal Omniglot archives that ship with the package: the originals, checked on load,
found without any download, and enough to train experiment=omniglot_minimal in a clone that has
nothing beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import TINY_CONV4
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from leo_lightning.config.schemas import register_configs
from leo_lightning.data.files import file_sha256
from leo_lightning.data.omniglot import BUNDLED_DIR, KNOWN_SHA256, OmniglotSource

register_configs()

HELD_OUT = {"val_alphabets": ["Tagalog"], "test_alphabets": ["Korean", "Early_Aramaic"]}


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_minimal_experiment_reads_the_archives_that_ship_with_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("LEO_DATA_DIR", str(tmp_path))
    cfg = compose_train("experiment=omniglot_minimal")
    src = instantiate(cfg.data.source)

    assert cfg.data.source.background == "small" and cfg.data.source.split == "alphabets"
    assert src._archives(allow_download=False) == {
        "small1": BUNDLED_DIR / "images_background_small1.zip",
        "small2": BUNDLED_DIR / "images_background_small2.zip",
    }


def test_the_bundled_archives_are_the_originals_with_their_licence():
    for name, digest in KNOWN_SHA256.items():
        assert file_sha256(BUNDLED_DIR / name) == digest
    assert "MIT License" in (BUNDLED_DIR / "LICENSE").read_text()


def test_a_copy_in_the_root_is_read_before_the_bundled_one(tmp_path):
    own = tmp_path / "images_background_small1.zip"
    shutil.copyfile(BUNDLED_DIR / own.name, own)
    src = OmniglotSource(tmp_path, split="alphabets", background="small", **HELD_OUT)

    assert src._archives(allow_download=False)["small1"] == own


def test_a_damaged_copy_of_a_known_archive_fails_naming_it_and_the_checksum(tmp_path):
    damaged = tmp_path / "images_background_small1.zip"
    damaged.write_bytes((BUNDLED_DIR / damaged.name).read_bytes()[:-100])
    src = OmniglotSource(tmp_path, split="alphabets", background="small", **HELD_OUT)

    with pytest.raises(
        ValueError, match=r"images_background_small1.zip has SHA-256 .* expected f38e"
    ):
        src.prepare()
    assert not list(tmp_path.rglob("*.pt"))  # nothing decoded from the damaged file


def test_the_minimal_archives_hold_242_characters_in_8_alphabets(tmp_path):
    cfg = compose_train("experiment=omniglot_minimal", f"data.source.cache_dir={tmp_path}")
    src = instantiate(cfg.data.source)

    characters = src.characters()
    assert len(characters) == 242
    assert len({name.split("/")[0] for name in characters}) == 8
    pools = src.load()
    assert {s: p.n_classes for s, p in pools.items()} == {"train": 652, "val": 68, "test": 248}
    assert all(int(p.counts.min()) == int(p.counts.max()) == 20 for p in pools.values())


def _repository_files() -> list[str]:
    """What a clone holds: tracked files and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        name
        for name in listed.split("\0")
        if name and ((ROOT / name).is_file() or (ROOT / name).is_symlink())
    ]


@pytest.mark.slow
def test_the_minimal_experiment_trains_in_a_copy_of_the_repository_with_nothing_beside_it(
    tmp_path,
):
    clone = tmp_path / "clone"  # tmp_path has no shared/ folder: nothing beside the clone
    for name in _repository_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():  # src/leo_lightning/conf -> ../../conf, as git keeps it
            (clone / name).symlink_to(os.readlink(ROOT / name))
        else:
            shutil.copy2(ROOT / name, clone / name)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(clone / "src"),  # the copy's own package and bundled archives
        "LEO_CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(clone / "scripts" / "train.py"),
            "experiment=omniglot_minimal",
            *TINY_CONV4,
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "trainer.enable_progress_bar=false",
            "~callbacks.progress_bar",
            "data.val_episodes=4",
            "data.test_episodes=8",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (clone / "outputs" / "runs").glob("*/*/results.json")
    assert '"test/episodes": 8' in results.read_text()
    assert list((clone / "data" / "omniglot").glob("images_background_small1-28px-*.pt"))


def test_a_damaged_bundled_archive_is_a_data_error_whose_advice_is_another_file(tmp_path):
    """Its advice used to be to delete the file and use the bundled copy: the very file."""
    from leo_lightning.data.omniglot import _check_known_checksum
    from leo_lightning.errors import DataError

    archive = BUNDLED_DIR / "images_background_small1.zip"
    with pytest.raises(DataError, match="ships with leo-lightning: reinstall") as error:
        _check_known_checksum(archive, "0" * 64)
    assert f"({archive})" not in str(error.value)
