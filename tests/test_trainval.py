"""data.trainval: meta-train on the training and validation classes (LEO's final runs); no
validation then, and the test uses the last checkpoint."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_CONV4, TINY_RUN, PoolSource, quiet_trainer, tiny_module
from lightning.pytorch.callbacks import ModelCheckpoint

import leo_lightning as ll
from leo_lightning.data import ClassPool, EpisodicDataModule
from leo_lightning.jobs.train import _test_checkpoint


def id_pool(first: int, n_classes: int, examples: int = 4) -> ClassPool:
    """Example values first, first + 1, ...: each split's examples are told apart by value."""
    ids = torch.arange(first, first + n_classes * examples).view(n_classes, examples, 1)
    return ClassPool.from_grouped(ids, [f"c{first}-{i}" for i in range(n_classes)])


def test_concat_keeps_every_class_with_its_own_examples_in_order():
    a, b = id_pool(0, 3, examples=4), id_pool(100, 2, examples=6)
    merged = ClassPool.concat([a, b])
    assert merged.class_names == a.class_names + b.class_names
    assert merged.counts.tolist() == [4, 4, 4, 6, 6]
    for c, pool, row in [(0, a, 0), (2, a, 2), (3, b, 0), (4, b, 1)]:
        own = pool.data[pool.index[row][pool.index[row] >= 0]]
        assert torch.equal(merged.data[merged.index[c][merged.index[c] >= 0]], own)


def test_concat_merges_groups_of_the_same_name():
    a = id_pool(0, 2).with_groups(["Greek", "Latin"])
    b = id_pool(100, 2).with_groups(["Latin", "Tagalog"])
    merged = ClassPool.concat([a, b])
    assert merged.group_names == ("Greek", "Latin", "Tagalog")
    assert merged.groups.tolist() == [0, 1, 1, 2]


POOLS = {"train": (0, 6), "val": (1000, 5), "test": (2000, 5)}


def datamodule(trainval: bool) -> EpisodicDataModule:
    pools = {split: id_pool(*args) for split, args in POOLS.items()}
    dm = EpisodicDataModule(
        PoolSource(pools), n_way=3, n_query=2, test_episodes=6, trainval=trainval
    )
    dm.setup("fit")
    return dm


def test_trainval_meta_trains_on_the_training_and_validation_classes():
    dm = datamodule(trainval=True)
    assert dm.pools["train"].n_classes == 6 + 5
    values = set()
    for batch in itertools.islice(iter(dm.train_dataloader()), 30):
        values |= set(torch.cat([batch.support_x, batch.query_x], 1).flatten().tolist())
    assert any(v < 1000 for v in values) and any(1000 <= v < 2000 for v in values)
    assert not any(v >= 2000 for v in values)


def test_trainval_leaves_the_test_episodes_as_they_were():
    a, b = datamodule(trainval=False), datamodule(trainval=True)
    for x, y in zip(a.test_dataloader(), b.test_dataloader()):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


def test_trainval_off_by_default_keeps_validation():
    dm = datamodule(trainval=False)
    assert dm.pools["train"].n_classes == 6 and len(dm.val_dataloader()) > 0


@pytest.mark.slow
def test_a_fit_with_trainval_never_validates():
    from helpers import random_image_datamodule

    trainer = quiet_trainer(max_steps=4, val_check_interval=2)
    trainer.fit(tiny_module(), datamodule=random_image_datamodule(trainval=True))
    assert trainer.global_step == 4
    assert not any(key.startswith("val/") for key in trainer.callback_metrics)


class FakeTrainer:
    def __init__(self, callback: ModelCheckpoint, global_step: int = 10):
        self.callbacks, self.global_step, self.saved = [callback], global_step, []

    def save_checkpoint(self, path):
        self.saved.append(Path(path))
        Path(path).write_text("checkpoint")


def test_without_trainval_the_test_uses_the_best_checkpoint(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path)
    callback.best_model_path = str(tmp_path / "best-step10.ckpt")
    assert _test_checkpoint(FakeTrainer(callback), trainval=False) == (
        str(tmp_path / "best-step10.ckpt"),
        "val/acc",
    )


def test_with_trainval_the_test_uses_the_last_checkpoint_even_with_a_best_one_restored(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path)
    callback.best_model_path = str(tmp_path / "best-step10.ckpt")  # from a resumed run
    (tmp_path / "last.ckpt").write_text("checkpoint")
    assert _test_checkpoint(FakeTrainer(callback), trainval=True) == (
        str(tmp_path / "last.ckpt"),
        "last",
    )


@pytest.mark.slow
def test_a_trainval_run_tests_the_last_checkpoint_and_its_results_say_so(tmp_path):
    results = ll.train(
        [
            *TINY_RUN,
            *TINY_CONV4,
            f"paths.output_dir={tmp_path}/outputs",
            f"paths.data_dir={tmp_path}/data",
            "data.trainval=true",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
        ]
    )
    run_dir = Path(results["run_dir"])
    assert results["trainval"] is True and results["checkpoint_selection"] == "last"
    assert results["best_ckpt"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert results["best_val_acc"] is None and 0 <= results["test/acc"] <= 1
    assert not list((run_dir / "checkpoints").glob("best-*.ckpt"))
    assert json.loads((run_dir / "results.json").read_text())["trainval"] is True
    assert "data.trainval=true" in (run_dir / "train.log").read_text()
