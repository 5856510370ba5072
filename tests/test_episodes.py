"""Episode invariants: the spec of data/sampling.py, data/episodes.py and the DataModule."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import PoolSource
from torch.utils.data import DataLoader

from leo_lightning.data import ClassPool, EpisodicDataModule
from leo_lightning.data.episodes import EpisodeShape, EpisodeStream, FixedEpisodes
from leo_lightning.data.sampling import episode_generator, sample_episode


def id_pool(n_classes: int = 10, examples: int = 8) -> ClassPool:
    """Each example's data is its own row id, so episodes can be traced back to examples."""
    ids = torch.arange(n_classes * examples).view(n_classes, examples, 1)
    return ClassPool.from_grouped(ids)


def draw(pool, n=5, k=2, q=3, index=0, seed=0, split="test"):
    return sample_episode(pool, n, k, q, episode_generator(seed, split, index))


def test_episode_shapes_and_label_range():
    ep = draw(id_pool(), n=5, k=2, q=3)
    assert ep.support_x.shape == (10, 1) and ep.support_y.shape == (10,)
    assert ep.query_x.shape == (15, 1) and ep.query_y.shape == (15,)
    assert sorted(ep.support_y.tolist()) == sorted(list(range(5)) * 2)
    assert sorted(ep.query_y.tolist()) == sorted(list(range(5)) * 3)


def test_support_and_query_never_share_an_example():
    pool = id_pool()
    for index in range(50):
        ep = draw(pool, index=index)
        ids = torch.cat([ep.support_x, ep.query_x]).flatten().tolist()
        assert len(ids) == len(set(ids))


def test_each_label_is_one_class_and_classes_are_distinct():
    pool, examples = id_pool(), 8
    for index in range(50):
        ep = draw(pool, index=index)
        classes = {}
        for x, y in zip(
            torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y])
        ):
            classes.setdefault(int(y), set()).add(int(x) // examples)
        assert all(len(c) == 1 for c in classes.values())
        assert len({c.pop() for c in classes.values()}) == 5


def test_labels_are_remapped_at_random_per_task():
    pool, examples = id_pool(), 8
    first_label_class = set()
    for index in range(30):
        ep = draw(pool, index=index)
        by_class = {int(x) // examples: int(y) for x, y in zip(ep.support_x, ep.support_y)}
        first_label_class.add(tuple(sorted(by_class.items())))
    assert len(first_label_class) > 1
    # The same class is not always given the same label.
    labels_of_class = {}
    for index in range(200):
        ep = draw(pool, index=index)
        for x, y in zip(ep.support_x, ep.support_y):
            labels_of_class.setdefault(int(x) // examples, set()).add(int(y))
    assert all(len(v) > 1 for v in labels_of_class.values())


def test_uneven_class_sizes_never_draw_padding():
    labels = torch.tensor([0] * 5 + [1] * 9 + [2] * 5 + [3] * 6)
    pool = ClassPool.from_labels(torch.arange(len(labels)).view(-1, 1), labels, list("abcd"))
    for index in range(100):
        ep = draw(pool, n=4, k=2, q=3, index=index)
        ids = torch.cat([ep.support_x, ep.query_x]).flatten()
        assert ids.min() >= 0 and len(set(ids.tolist())) == 20


def test_same_index_same_episode_different_index_different_episode():
    pool = id_pool()
    tensors = lambda episode: episode[:4]  # noqa: E731  (a hand-drawn episode has no index)
    assert all(
        torch.equal(a, b)
        for a, b in zip(tensors(draw(pool, index=3)), tensors(draw(pool, index=3)))
    )
    assert not torch.equal(draw(pool, index=3).support_x, draw(pool, index=4).support_x)


def test_too_few_classes_names_split_and_counts():
    with pytest.raises(ValueError, match=r"split 'val' has 4 classes but data.n_way=5"):
        id_pool(n_classes=4).check_supports("val", n_way=5, examples_per_class=2)


def test_too_few_examples_names_split_class_and_counts():
    labels = torch.tensor([0] * 5 + [1] * 2)
    pool = ClassPool.from_labels(torch.zeros(7, 1), labels, ["alpha", "beta"])
    with pytest.raises(ValueError, match=r"split 'train'.*'beta' \(2\)"):
        pool.check_supports("train", n_way=2, examples_per_class=4)


def _as_list(loader, n_batches):
    return [b for b in itertools.islice(iter(loader), n_batches)]


def _equal_batches(a, b):
    return len(a) == len(b) and all(
        torch.equal(x, y) for ba, bb in zip(a, b) for x, y in zip(ba, bb)
    )


@pytest.mark.parametrize("workers", [2])
def test_fixed_episodes_do_not_depend_on_worker_count(workers):
    fixed = FixedEpisodes(id_pool(), EpisodeShape(5, 1, 3), seed=7, split="val", length=12)
    plain = _as_list(DataLoader(fixed, batch_size=4), 3)
    parallel = _as_list(DataLoader(fixed, batch_size=4, num_workers=workers), 3)
    assert _equal_batches(plain, parallel)


def test_training_stream_does_not_depend_on_worker_count():
    stream = EpisodeStream(id_pool(), EpisodeShape(5, 1, 3), seed=1, batch_size=3)
    plain = _as_list(DataLoader(stream, batch_size=3), 4)
    parallel = _as_list(DataLoader(stream, batch_size=3, num_workers=2), 4)
    assert _equal_batches(plain, parallel)


def test_training_stream_differs_between_ranks_and_resumes_by_batch():
    shape = EpisodeShape(5, 1, 3)
    rank0 = EpisodeStream(id_pool(), shape, seed=1, batch_size=2, rank=0, world_size=2)
    rank1 = EpisodeStream(id_pool(), shape, seed=1, batch_size=2, rank=1, world_size=2)
    a, b = (
        _as_list(DataLoader(rank0, batch_size=2), 3),
        _as_list(DataLoader(rank1, batch_size=2), 3),
    )
    assert not any(torch.equal(x.support_x, y.support_x) for x, y in zip(a, b))
    resumed = EpisodeStream(id_pool(), shape, seed=1, batch_size=2, world_size=2, start_batch=2)
    assert _equal_batches(a[2:], _as_list(DataLoader(resumed, batch_size=2), 1))


def make_datamodule(**overrides):
    pools = {"train": id_pool(10), "val": id_pool(6), "test": id_pool(6)}
    kwargs = dict(
        n_way=5,
        k_shot=1,
        n_query=3,
        meta_batch_size=2,
        eval_batch_size=4,
        val_episodes=8,
        test_episodes=8,
    )
    kwargs.update(overrides)
    dm = EpisodicDataModule(PoolSource(pools), **kwargs)
    dm.setup("fit")
    return dm


def test_datamodule_batches_have_a_task_dimension():
    batch = next(iter(make_datamodule().train_dataloader()))
    assert batch.support_x.shape == (2, 5, 1) and batch.query_y.shape == (2, 15)


def test_val_and_test_episodes_identical_across_datamodule_instances():
    a, b = make_datamodule(), make_datamodule(num_workers=2)
    for loader in ("val_dataloader", "test_dataloader"):
        assert _equal_batches(list(getattr(a, loader)()), list(getattr(b, loader)()))


def test_training_seed_changes_stream_but_not_eval_episodes():
    a, b = make_datamodule(train_seed=1), make_datamodule(train_seed=2)
    assert not torch.equal(
        next(iter(a.train_dataloader())).support_x, next(iter(b.train_dataloader())).support_x
    )
    assert _equal_batches(list(a.test_dataloader()), list(b.test_dataloader()))


def test_datamodule_rejects_impossible_episode_shape():
    with pytest.raises(ValueError, match="split 'val' has 6 classes but data.n_way=8"):
        make_datamodule(n_way=8)


def test_datamodule_rejects_examples_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(1,\).*\(1, 28, 28\)"):
        make_datamodule(image_size=28, channels=1)


class FakeTrainer:
    def __init__(self, rank, world_size):
        self.global_rank, self.world_size = rank, world_size


def test_batches_carry_the_index_of_each_episode_in_its_list_or_stream():
    dm = make_datamodule(test_episodes=8)
    dm.trainer = FakeTrainer(1, 2)
    assert [b.index.tolist() for b in dm.test_dataloader()] == [[1, 3, 5, 7]]
    stream = EpisodeStream(id_pool(), EpisodeShape(5, 1, 3), seed=1, batch_size=2, world_size=2)
    assert [b.index.tolist() for b in _as_list(DataLoader(stream, batch_size=2), 2)] == [
        [0, 2],
        [4, 6],
    ]


def test_eval_episodes_are_divided_between_ranks_without_loss_or_repeats():
    seen = []
    for rank in range(3):
        dm = make_datamodule(test_episodes=8)
        dm.trainer = FakeTrainer(rank, 3)
        seen += [tuple(b.support_x.flatten().tolist()) for b in dm.test_dataloader().dataset]
    single = make_datamodule(test_episodes=8).test_dataloader().dataset
    assert sorted(seen) == sorted(tuple(e.support_x.flatten().tolist()) for e in single)


@pytest.mark.parametrize("within_group", [False, True])
def test_fixed_episode_classes_name_the_pool_class_behind_every_label(within_group):
    examples = 8
    pool = id_pool(examples=examples).with_groups(["a"] * 5 + ["b"] * 5)
    fixed = FixedEpisodes(pool, EpisodeShape(5, 1, 3), 7, "test", 20, within_group)
    for index in range(20):
        episode, classes = fixed[index], fixed.classes(index)
        assert classes.shape == (5,)
        for x, y in [(episode.support_x, episode.support_y), (episode.query_x, episode.query_y)]:
            assert torch.equal(x.flatten() // examples, classes[y])  # label j is class classes[j]
