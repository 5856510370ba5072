"""data=combined: several sources as one, classes kept apart by source, held-out classes of
every source kept out of training."""

from __future__ import annotations

import pytest
import torch
from conftest import random_pool
from helpers import PoolSource

from leo_lightning.data import EpisodicDataModule
from leo_lightning.data.combined import CombinedSource
from leo_lightning.data.pretrain_datamodule import PretrainDataModule
from leo_lightning.errors import DataError


def source(seed: int, grouped: bool = False, size: int = 28) -> PoolSource:
    def split(n_classes: int, offset: int):
        pool = random_pool(n_classes, examples=4, size=size, seed=seed + offset)
        if grouped:
            pool = pool.with_groups([f"alphabet{c % 2}" for c in range(n_classes)])
        return pool

    return PoolSource({"train": split(6, 0), "val": split(3, 1), "test": split(4, 2)})


def test_each_split_is_the_union_of_that_split_of_every_source():
    a, b = source(0), source(10)
    pools = CombinedSource({"a": a, "b": b}).load()
    for split, count in (("train", 6), ("val", 3), ("test", 4)):
        assert pools[split].n_classes == 2 * count
        expected = torch.cat([a.pools[split].data, b.pools[split].data])
        assert torch.equal(pools[split].data, expected)


def test_classes_are_named_by_their_source_so_equal_names_stay_apart():
    pools = CombinedSource({"a": source(0), "b": source(10)}).load()
    names = pools["train"].class_names
    assert names[:2] == ("a/0", "a/1") and names[6:8] == ("b/0", "b/1")
    assert len(set(names)) == len(names)


def test_eval_sources_give_the_validation_and_test_splits_alone():
    a, b = source(0), source(10)
    pools = CombinedSource({"a": a, "b": b}, eval_sources=["b"]).load()
    assert pools["train"].n_classes == 12
    for split in ("val", "test"):
        assert torch.equal(pools[split].data, b.pools[split].data)
        assert all(name.startswith("b/") for name in pools[split].class_names)


def test_a_sources_groups_are_kept_and_an_ungrouped_source_is_one_group():
    pools = CombinedSource({"a": source(0, grouped=True), "b": source(10)}).load()
    assert pools["train"].group_names == ("a/alphabet0", "a/alphabet1", "b")


def test_group_by_source_makes_each_source_one_group():
    combined = CombinedSource({"a": source(0, grouped=True), "b": source(10)}, group_by_source=True)
    pools = combined.load()
    assert pools["train"].group_names == ("a", "b")
    assert pools["train"].group_sizes().tolist() == [6, 6]


def test_sources_of_different_shapes_are_refused_naming_them():
    combined = CombinedSource({"small": source(0, size=20), "large": source(1, size=28)})
    with pytest.raises(DataError, match=r"small: \[1, 20, 20\].*large: \[1, 28, 28\]"):
        combined.load()


@pytest.mark.parametrize("eval_sources", [["c"], []])
def test_eval_sources_must_name_some_of_the_sources(eval_sources):
    with pytest.raises(DataError, match="data.source.eval_sources"):
        CombinedSource({"a": source(0), "b": source(1)}, eval_sources=eval_sources)


def test_pretraining_on_a_combined_source_never_sees_a_held_out_class():
    a, b = source(0), source(10)

    episodes = EpisodicDataModule(
        CombinedSource({"a": a, "b": b}), image_size=28, channels=1, n_way=3, k_shot=1, n_query=2
    )
    data = PretrainDataModule(episodes, batch_size=4, seed=0)
    data.prepare_data()
    held_out = torch.cat([s.pools[split].data for s in (a, b) for split in ("val", "test")])
    assert data.train_pool.n_classes == 12
    for image in data.train_pool.data:
        assert not (held_out == image).flatten(1).all(1).any()


@pytest.mark.slow
def test_data_combined_trains_on_glyphs_and_omniglot_and_holds_out_omniglots_alphabets(tmp_path):
    """The shipped config: Omniglot minimal's held-out alphabets never reach training."""
    from hydra.utils import instantiate

    from leo_lightning.config.compose import compose_config
    from leo_lightning.config.validation import config_problems

    glyphs = "data.source.sources.glyphs"
    cfg = compose_config(
        "train",
        ["data=combined", f"paths.data_dir={tmp_path}", f"{glyphs}.train_classes=40"]
        + [f"{glyphs}.val_classes=5", f"{glyphs}.test_classes=5"],
        hydra=False,
    )
    assert config_problems(cfg) == []
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    pools = datamodule.pools
    train_alphabets = {n.split("/")[1] for n in pools["train"].class_names if n[0] == "o"}
    assert train_alphabets.isdisjoint({"Tagalog", "Korean", "Early_Aramaic"})
    assert sum(n.startswith("glyphs/") for n in pools["train"].class_names) == 40
    assert {n.split("/")[1] for n in pools["val"].class_names} == {"Tagalog"}
    assert {n.split("/")[1] for n in pools["test"].class_names} == {"Korean", "Early_Aramaic"}
