"""experiment=omniglot_minimal_105: the minimal Omniglot experiment at the archives' own 105 px."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY_CONV4, run_script
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_config import compose_train


def leaves(cfg) -> dict:
    """{dotted key: value} of every leaf, interpolations unresolved."""
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return flat


def test_it_is_the_minimal_experiment_with_105_px_images_and_its_own_step_budget():
    minimal = leaves(compose_train("experiment=omniglot_minimal"))
    native = leaves(compose_train("experiment=omniglot_minimal_105"))
    changed = {k for k in minimal.keys() | native.keys() if minimal.get(k) != native.get(k)}
    assert changed == {"data.image_size", "trainer.max_steps", "trainer.val_check_interval"}
    assert native["data.image_size"] == 105 and native["trainer.max_time"] == "00:00:10:00"
    # a 105 px step costs many 28 px ones: fewer steps fill the same 10 minutes
    assert native["trainer.max_steps"] < minimal["trainer.max_steps"]
    cfg = compose_train("experiment=omniglot_minimal_105")
    assert list(cfg.model.input_shape) == [1, 105, 105] and cfg.data.source.image_size == 105


def test_its_conv4_takes_105_px_images_and_gives_2304_features():
    backbone = instantiate(compose_train("experiment=omniglot_minimal_105").model.backbone)
    assert backbone(torch.zeros(2, 1, 105, 105)).shape == (2, 2304)


@pytest.mark.slow
def test_a_debug_fast_run_trains_and_tests_at_105_px(tmp_path):
    proc = run_script(
        "train.py",
        tmp_path,
        "experiment=omniglot_minimal_105",
        "debug=fast",
        *TINY_CONV4,
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "data.val_episodes=2",
        "data.test_episodes=2",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (tmp_path / "outputs").glob("runs/*/*/results.json")
    assert json.loads(results.read_text())["test/episodes"] == 2
    assert list((tmp_path / "data" / "omniglot").glob("images_background_small1-105px-*.pt"))
