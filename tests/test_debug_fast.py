"""`debug=fast` works with every data source; only the glyphs get fewer classes drawn."""

from __future__ import annotations

import pytest
from conftest import ROOT
from helpers import TINY_CONV4, run_script
from hydra import compose, initialize_config_dir
from test_folder import write_class
from test_omniglot import write_archive

from leo_lightning.config.schemas import register_configs

register_configs()

# Fewer steps and episodes than debug=fast itself, and 16 px images: a run of a few seconds.
QUICK = [
    "debug=fast",
    *TINY_CONV4,
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "data.val_episodes=2",
    "data.test_episodes=2",
    "data.n_way=2",
    "data.n_query=2",
    "data.image_size=16",
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
]


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("data", ["glyphs", "folder", "omniglot", "leo_embeddings"])
def test_debug_fast_composes_with_every_data_source(data):
    cfg = compose_train("debug=fast", f"data={data}")
    assert cfg.trainer.max_steps == 20 and cfg.data.val_episodes == 16


def test_debug_fast_draws_fewer_glyph_classes_and_the_command_line_still_wins():
    source = compose_train("debug=fast").data.source
    assert (source.train_classes, source.val_classes, source.test_classes) == (64, 16, 16)
    assert compose_train("debug=fast", "data.source.train_classes=9").data.source.train_classes == 9
    assert compose_train().data.source.train_classes == 3000  # without debug=fast: untouched


def train(tmp_path, *overrides):
    proc = run_script("train.py", tmp_path, *QUICK, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "outputs").glob("runs/*/*/checkpoints/last.ckpt"))


@pytest.mark.slow
def test_debug_fast_trains_on_an_image_folder(tmp_path):
    root = tmp_path / "images"
    for split in ("train", "val", "test"):
        for c in range(2):
            write_class(root / split / f"{split}{c}", c, n_images=3)
    train(tmp_path, "data=folder", f"data.source.root={root}", "data.channels=3")


@pytest.mark.slow
def test_debug_fast_trains_on_omniglot_archives(tmp_path):
    root = tmp_path / "omniglot"
    root.mkdir()
    # Not under the minimal sets' names: those are checked against the real archives' SHA-256.
    write_archive(
        root / "images_background.zip", {"Balinese": 2, "Greek": 1, "Latin": 1, "Tagalog": 1}
    )
    train(
        tmp_path,
        "data=omniglot",
        f"data.source.root={root}",
        "data.source.background=full",
        "data.source.split=alphabets",
        "data.source.val_alphabets=[Latin]",
        "data.source.test_alphabets=[Tagalog]",
    )
