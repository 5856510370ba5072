"""A model.input_shape that does not fit the data fails before training, naming both sides,
not as "mat1 and mat2 shapes cannot be multiplied" in the first step."""

from __future__ import annotations

import pytest
import torch
from helpers import PoolSource, quiet_trainer, random_image_datamodule, run_script, tiny_module
from test_config import compose_train

from leo_lightning.config.validation import config_problems
from leo_lightning.data import ClassPool, EpisodicDataModule

FLATTEN = {"_target_": "leo_lightning.models.Flatten"}


def test_an_input_shape_that_does_not_match_the_images_is_a_config_problem():
    problems = config_problems(compose_train("model.input_shape=[1,32,32]"))
    assert any(
        p.startswith("model.input_shape=[1, 32, 32]") and "data.image_size=28" in p
        for p in problems
    ), problems


def test_the_default_input_shape_follows_the_images():
    assert config_problems(compose_train("data.image_size=32", "data.channels=3")) == []


def test_feature_data_without_an_input_shape_is_a_config_problem():
    problems = config_problems(compose_train("data=leo_embeddings"))
    assert any(p.startswith("model.input_shape") and "[640]" in p for p in problems), problems


def feature_datamodule(dim: int) -> EpisodicDataModule:
    """5-way episodes of random [dim] features: no image size to check them against."""
    g = torch.Generator().manual_seed(0)
    pools = {
        split: ClassPool.from_grouped(torch.randn(n, 6, dim, generator=g))
        for split, n in (("train", 10), ("val", 5), ("test", 5))
    }
    return EpisodicDataModule(PoolSource(pools), n_way=5, k_shot=1, n_query=3, val_episodes=4)


def test_features_of_another_size_fail_at_setup_naming_both_shapes():
    module = tiny_module(backbone=FLATTEN, input_shape=[16])
    with pytest.raises(ValueError, match=r"model.input_shape=\[16\].*\[32\].*data.source"):
        quiet_trainer(max_steps=1).fit(module, datamodule=feature_datamodule(32))
    assert module.global_step == 0


def test_testing_a_model_on_images_of_another_size_fails_naming_both_keys():
    """scripts/eval.py: the model comes from a checkpoint, data.* from the command line."""
    module = tiny_module()  # 28 px
    datamodule = random_image_datamodule(image_size=32)
    datamodule.source.pools = {  # 32 px images, as data.image_size=32 would decode them
        split: ClassPool.from_grouped(torch.zeros(n, 6, 1, 32, 32, dtype=torch.uint8))
        for split, n in (("train", 10), ("val", 5), ("test", 5))
    }
    with pytest.raises(
        ValueError, match=r"model.input_shape=\[1, 28, 28\].*\[1, 32, 32\].*data.image_size=32"
    ):
        quiet_trainer().test(module, datamodule=datamodule)


@pytest.mark.slow
def test_train_script_rejects_the_mismatch_before_creating_the_run(tmp_path):
    proc = run_script("train.py", tmp_path, "model.input_shape=[1,32,32]")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "model.input_shape=[1, 32, 32]" in proc.stderr and "data.image_size=28" in proc.stderr
    assert not (tmp_path / "outputs").exists()
