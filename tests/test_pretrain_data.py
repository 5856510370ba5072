"""Pretraining reads labelled batches of the training classes only, as a seeded, resumable
stream; the validation and test classes never reach it."""

from __future__ import annotations

import pytest
import torch
from helpers import random_image_datamodule

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.classification import ClassificationBatches, examples_and_labels
from leo_lightning.data.pretrain_datamodule import PretrainDataModule


def pool(n_classes=6, per_class=5):
    # each image holds its own row number, so a batch says which examples it took
    rows = torch.arange(n_classes * per_class, dtype=torch.uint8).view(-1, 1, 1, 1)
    return ClassPool.from_grouped(rows.expand(-1, 1, 4, 4).reshape(n_classes, per_class, 1, 4, 4))


def test_every_example_has_the_label_of_its_class():
    rows, labels = examples_and_labels(pool())
    assert torch.equal(labels, rows // 5)


def test_a_pass_takes_each_example_at_most_once():
    batches = ClassificationBatches(pool(), batch_size=4, seed=0)
    seen = torch.cat([batches.batch(n)[0][:, 0, 0, 0] for n in range(batches.batches_per_pass)])
    assert len(seen.unique()) == len(seen) == 28  # 30 examples, the last 2 dropped


def test_the_labels_are_those_of_the_images():
    images, labels = ClassificationBatches(pool(), batch_size=8, seed=3).batch(2)
    assert torch.equal(labels, images[:, 0, 0, 0].long() // 5)


def test_a_batch_depends_on_the_seed_and_its_number_only():
    a = ClassificationBatches(pool(), batch_size=4, seed=1)
    b = ClassificationBatches(pool(), batch_size=4, seed=1, start_batch=9)
    assert torch.equal(a.batch(9)[0], next(iter(b))[0])
    assert not torch.equal(a.batch(9)[0], ClassificationBatches(pool(), 4, seed=2).batch(9)[0])


def test_two_ranks_never_share_an_example_within_a_pass():
    ranks = [ClassificationBatches(pool(), 3, seed=0, rank=r, world_size=2) for r in (0, 1)]
    taken = [torch.cat([r.batch(n)[0] for n in range(r.batches_per_pass)]) for r in ranks]
    assert not set(taken[0].flatten().tolist()) & set(taken[1].flatten().tolist())


def test_pretraining_sees_the_training_split_and_nothing_else():
    episodes = random_image_datamodule()
    data = PretrainDataModule(episodes, batch_size=5, seed=0)
    data.prepare_data()
    train = episodes.source.load()["train"]
    assert data.train_pool.n_classes == train.n_classes == 10
    held_out = torch.cat([episodes.source.load()[s].data for s in ("val", "test")])
    for images, _ in (data.train_dataloader().dataset.batch(n) for n in range(12)):
        for image in images:
            assert (train.data == image).flatten(1).all(1).any()
            assert not (held_out == image).flatten(1).all(1).any()


def test_a_batch_larger_than_the_data_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="pretrain.batch_size=64"):
        ClassificationBatches(pool(), batch_size=64, seed=0)
