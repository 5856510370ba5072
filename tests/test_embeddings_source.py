"""`data=embeddings` reads back what leo-embed writes, and refuses files that do not belong
together or do not come from the pinned checkpoint, naming the files."""

from __future__ import annotations

import pytest
import torch

from leo_lightning.data.embeddings import EmbeddingSource, read_split, split_path, write_split
from leo_lightning.errors import DataError, DataNotFoundError

PROVENANCE = {"checkpoint": "pre.ckpt", "checkpoint_sha256": "abc", "backbone": {"x": 1}}


def write_run(root, provenance=PROVENANCE, width=6, **changed_splits):
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val", "test"):
        features = torch.randn(12, width, generator=g) + 3.0  # far from centred
        labels = torch.arange(12) % 4
        names = [f"{split}-{c}" for c in range(4)]
        write_split(
            root, split, features, labels, names, None, changed_splits.get(split, provenance)
        )


def test_a_split_file_round_trips(tmp_path):
    features, labels = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    write_split(tmp_path, "val", features, labels, ["a", "b"], ["g", "g"], PROVENANCE)
    payload = read_split(split_path(tmp_path, "val"))
    assert torch.equal(payload["features"], features) and torch.equal(payload["labels"], labels)
    assert payload["class_names"] == ["a", "b"] and payload["class_groups"] == ["g", "g"]
    assert payload["provenance"] == PROVENANCE


def test_the_source_gives_every_split_as_a_pool_of_its_classes(tmp_path):
    write_run(tmp_path)
    pools = EmbeddingSource(str(tmp_path)).load()
    assert pools["test"].class_names == ("test-0", "test-1", "test-2", "test-3")
    assert pools["train"].example_shape == (6,)
    assert pools["val"].counts.tolist() == [3, 3, 3, 3]


def test_the_source_records_where_the_features_come_from(tmp_path):
    write_run(tmp_path)
    source = EmbeddingSource(str(tmp_path))
    source.load()
    assert source.provenance["checkpoint_sha256"] == "abc"


def test_centring_subtracts_the_training_mean_then_normalises(tmp_path):
    write_run(tmp_path)
    raw = read_split(split_path(tmp_path, "test"))["features"]
    mean = read_split(split_path(tmp_path, "train"))["features"].mean(0)
    centred = EmbeddingSource(str(tmp_path), centre=True).load()["test"]
    expected = torch.nn.functional.normalize(raw - mean, dim=-1)
    assert torch.allclose(centred.data, expected)


def test_files_of_two_embedding_runs_are_refused(tmp_path):
    write_run(tmp_path, test={**PROVENANCE, "checkpoint_sha256": "other"})
    with pytest.raises(DataError, match=r"test.pt and .*train.pt do not come from one leo-embed"):
        EmbeddingSource(str(tmp_path)).load()


def test_a_pinned_checkpoint_refuses_the_features_of_another(tmp_path):
    write_run(tmp_path)
    with pytest.raises(DataError, match="data.source.checkpoint_sha256=def"):
        EmbeddingSource(str(tmp_path), checkpoint_sha256="def").load()


def test_a_missing_folder_says_how_to_make_the_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="leo-embed ckpt_path="):
        EmbeddingSource(str(tmp_path / "nowhere")).prepare()


def test_a_file_of_another_kind_is_refused_naming_it(tmp_path):
    write_run(tmp_path)
    torch.save({"features": torch.zeros(2, 2)}, split_path(tmp_path, "val"))
    with pytest.raises(DataError, match=r"val.pt: not an embeddings file written by leo-embed"):
        EmbeddingSource(str(tmp_path)).load()


def test_the_alphabets_of_the_embedded_classes_are_kept_for_within_alphabet_episodes(tmp_path):
    features, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    for split in ("train", "val", "test"):
        groups = ["Greek", "Greek", "Latin"]
        write_split(tmp_path, split, features, labels, ["a", "b", "c"], groups, PROVENANCE)
    pool = EmbeddingSource(str(tmp_path)).load()["test"]
    assert pool.group_names == ("Greek", "Latin") and pool.groups.tolist() == [0, 0, 1]
