"""data.within_alphabet: validation and test episodes whose N classes share one alphabet (one
group of the pool; Omniglot: an alphabet in one rotation)."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT
from helpers import PoolSource
from hydra import compose, initialize_config_dir
from test_config import compose_train
from test_omniglot import SIZE, write_archive

from leo_lightning.config.validation import config_problems
from leo_lightning.data import ClassPool, EpisodicDataModule, OmniglotSource
from leo_lightning.data.episodes import EpisodeShape, FixedEpisodes
from leo_lightning.errors import DataError

EXAMPLES = 4
GROUP_SIZES = {"A": 6, "B": 2, "C": 5, "D": 3}  # classes per group


def grouped_pool(sizes: dict[str, int] = GROUP_SIZES, grouped: bool = True) -> ClassPool:
    """Each example's value is its class id (EXAMPLES examples per class)."""
    groups = [name for name, n in sizes.items() for _ in range(n)]
    labels = torch.arange(len(groups)).repeat_interleave(EXAMPLES)
    pool = ClassPool.from_labels(labels.view(-1, 1), labels, [str(i) for i in range(len(groups))])
    return pool.with_groups(groups if grouped else None)


def episode_groups(pool: ClassPool, episode) -> set[str]:
    classes = torch.cat([episode.support_x, episode.query_x]).flatten().tolist()
    return {pool.group_names[int(pool.groups[c])] for c in classes}


def fixed(pool: ClassPool, n_way: int = 5, within: bool = True, length: int = 40):
    return FixedEpisodes(pool, EpisodeShape(n_way, 1, 2), 3, "test", length, within)


def test_every_episode_takes_its_classes_from_one_group():
    pool = grouped_pool()
    episodes = fixed(pool, n_way=3)
    assert all(len(episode_groups(pool, e)) == 1 for e in episodes)
    assert all(len(set(e.support_y.tolist())) == 3 for e in episodes)


def test_groups_with_fewer_than_n_way_classes_are_never_drawn():
    pool = grouped_pool()
    drawn = set().union(*(episode_groups(pool, e) for e in fixed(pool, n_way=5)))
    assert drawn == {"A", "C"}


def test_fixed_within_group_episodes_are_reproducible():
    a, b = fixed(grouped_pool()), fixed(grouped_pool())
    assert all(torch.equal(x, y) for ea, eb in zip(a, b) for x, y in zip(ea, eb))


def datamodule(pools: dict[str, ClassPool], **kwargs) -> EpisodicDataModule:
    kwargs = {
        "n_way": 3,
        "k_shot": 1,
        "n_query": 2,
        "val_episodes": 6,
        "test_episodes": 6,
        **kwargs,
    }
    dm = EpisodicDataModule(PoolSource(pools), **kwargs)
    dm.setup("fit")
    return dm


def test_off_by_default_episodes_are_those_of_a_pool_without_groups():
    with_groups = datamodule({s: grouped_pool() for s in ("train", "val", "test")})
    without = datamodule({s: grouped_pool(grouped=False) for s in ("train", "val", "test")})
    for loader in ("val_dataloader", "test_dataloader"):
        for a, b in zip(getattr(with_groups, loader)(), getattr(without, loader)()):
            assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_the_datamodule_draws_validation_and_test_episodes_within_one_group():
    pools = {s: grouped_pool() for s in ("train", "val", "test")}
    dm = datamodule(pools, within_alphabet=True)
    for split in ("val", "test"):
        for episode in getattr(dm, f"{split}_dataloader")().dataset:
            assert len(episode_groups(pools[split], episode)) == 1


def test_n_way_larger_than_every_group_fails_at_setup_naming_key_split_and_largest():
    pools = {"train": grouped_pool(), "val": grouped_pool(), "test": grouped_pool({"A": 4, "B": 3})}
    with pytest.raises(
        DataError,
        match=r"data.within_alphabet=true: no alphabet of split 'test' has data.n_way=5 "
        r"classes \(the largest, 'A', has 4\)",
    ):
        datamodule(pools, n_way=5, within_alphabet=True)


def test_testing_checks_only_the_test_split_and_fitting_checks_both():
    """A 20-way model is tested within the test alphabets even though no validation alphabet
    (Omniglot minimal: Tagalog, 17 characters) has 20 characters; a fit refuses before training."""
    pools = {"train": grouped_pool(), "val": grouped_pool({"A": 4, "B": 3}), "test": grouped_pool()}
    kwargs = {"n_way": 5, "k_shot": 1, "n_query": 2, "within_alphabet": True, "test_episodes": 2}
    dm = EpisodicDataModule(PoolSource(pools), **kwargs)
    dm.setup("test")
    assert all(len(episode_groups(pools["test"], e)) == 1 for e in dm.test_dataloader().dataset)
    with pytest.raises(DataError, match="no alphabet of split 'val' has data.n_way=5"):
        EpisodicDataModule(PoolSource(pools), **kwargs).setup("fit")


def test_a_pool_without_groups_fails_at_setup_naming_the_key():
    pools = {s: grouped_pool(grouped=False) for s in ("train", "val", "test")}
    with pytest.raises(DataError, match=r"data.within_alphabet=true .* no groups"):
        datamodule(pools, within_alphabet=True)


def test_omniglot_groups_its_classes_by_alphabet_and_rotation(tmp_path):
    write_archive(tmp_path / "images_background.zip", {"Greek": 3, "Latin": 2, "Tagalog": 4})
    split = {"split": "alphabets", "val_alphabets": ["Greek"], "test_alphabets": ["Tagalog"]}
    pools = OmniglotSource(tmp_path, image_size=SIZE, **split).load()

    test = pools["test"]
    assert test.group_names == tuple(f"Tagalog/rot{r}" for r in (0, 90, 180, 270))
    for c, name in enumerate(test.class_names):  # "Tagalog/character01/rot90"
        alphabet, _, rotation = name.split("/")
        assert test.group_names[int(test.groups[c])] == f"{alphabet}/{rotation}"
    assert test.group_sizes().tolist() == [4, 4, 4, 4]


def test_omniglot_without_rotations_groups_by_alphabet(tmp_path):
    write_archive(tmp_path / "images_background.zip", {"Greek": 3, "Latin": 2, "Tagalog": 4})
    split = {"split": "alphabets", "val_alphabets": ["Greek"], "test_alphabets": ["Tagalog"]}
    pools = OmniglotSource(tmp_path, image_size=SIZE, rotations=False, **split).load()
    assert pools["test"].group_names == ("Tagalog",) and pools["train"].group_names == ("Latin",)


def test_omniglot_has_the_key_off_by_default_and_other_sources_reject_it():
    assert compose_train("data=omniglot").data.within_alphabet is False
    assert config_problems(compose_train("data=omniglot", "data.within_alphabet=true")) == []
    problems = config_problems(compose_train("data.within_alphabet=true"))
    assert problems == [
        "data.within_alphabet=true: needs classes grouped by alphabet, which only data=omniglot "
        "and data=embeddings of it have (data.source is GlyphSource)"
    ]
    grouped = compose_train("data=embeddings", "data.source.root=x", "data.within_alphabet=true")
    assert not [p for p in config_problems(grouped) if "within_alphabet" in p]


def test_an_eval_config_leaves_the_check_to_the_checkpoints_data_source():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["ckpt_path=x.ckpt", "data.within_alphabet=true"])
    assert cfg.data.within_alphabet is True and config_problems(cfg) == []
