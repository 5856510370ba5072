"""The original LEO embedding files (leo_lightning.data.leo_embeddings), on small pickles written
in the same format: a dict with `embeddings` [n, 640] and `keys` '<prefix>-<class>-<image file>'."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from conftest import ROOT
from helpers import quiet_trainer
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from leo_lightning.config.schemas import register_configs
from leo_lightning.data.leo_embeddings import (
    LEOEmbeddingSource,
    read_embedding_file,
    write_embedding_file,
)
from leo_lightning.errors import ConfigError, DataNotFoundError
from leo_lightning.jobs.embed import check_leo_layout

register_configs()

FEATURES = 640
CLASSES = {"train": 6, "val": 5, "test": 5}


def write_split(path: Path, split: str, n_classes: int, per_class: int = 6, seed: int = 0):
    """One <split>_embeddings.pkl; class c's rows are scaled by (c + 1) so norms differ."""
    rng = np.random.default_rng(seed)
    keys, rows = [], []
    for c in range(n_classes):
        wnid = f"n{('train', 'val', 'test').index(split)}{c:07d}"
        for i in range(per_class):
            keys.append(f"{split}-{wnid}-{wnid}_{1000 + i}.JPEG")
            rows.append(rng.normal(size=FEATURES) * (c + 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # protocol 2, as the original's Python 2 files
        pickle.dump({"embeddings": np.array(rows, dtype=np.float32), "keys": keys}, handle, 2)
    return keys


@pytest.fixture
def root(tmp_path) -> Path:
    for dataset in ("miniImageNet", "tieredImageNet"):
        for split, n in CLASSES.items():
            write_split(tmp_path / dataset / "center" / f"{split}_embeddings.pkl", split, n)
    return tmp_path


def test_features_are_unit_norm_float32_grouped_by_the_class_in_the_key(tmp_path):
    path = tmp_path / "train_embeddings.pkl"
    keys = write_split(path, "train", 4, per_class=3)

    pool = read_embedding_file(path)

    assert pool.data.dtype == torch.float32 and pool.example_shape == (FEATURES,)
    assert torch.allclose(pool.data.norm(dim=1), torch.ones(12))
    classes = [k.split("-")[1] for k in keys]
    assert pool.class_names == tuple(sorted(set(classes)))
    for c, name in enumerate(pool.class_names):
        rows = pool.index[c, : pool.counts[c]].tolist()
        assert rows == [i for i, k in enumerate(classes) if k == name]


def test_the_three_splits_are_read_and_class_disjoint(root):
    pools = LEOEmbeddingSource(root, "tieredImageNet").load()

    assert {s: p.n_classes for s, p in pools.items()} == CLASSES
    names = [set(p.class_names) for p in pools.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


def test_byte_string_keys_of_python_2_files_are_decoded(tmp_path):
    path = tmp_path / "val_embeddings.pkl"
    keys = np.array([b"val-n01-n01_1.JPEG", b"val-n01-n01_2.JPEG", b"val-n02-n02_1.JPEG"])
    embeddings = np.eye(3, FEATURES, dtype=np.float32)
    path.write_bytes(pickle.dumps({"embeddings": embeddings, "keys": keys}, 2))

    pool = read_embedding_file(path)

    assert pool.class_names == ("n01", "n02") and pool.counts.tolist() == [2, 1]


def test_missing_files_raise_naming_them_and_where_to_get_them(tmp_path):
    source = LEOEmbeddingSource(tmp_path, "miniImageNet", "multiview")

    with pytest.raises(FileNotFoundError) as error:
        source.prepare()

    message = str(error.value)
    for split in ("train", "val", "test"):
        assert str(tmp_path / "miniImageNet" / "multiview" / f"{split}_embeddings.pkl") in message
    assert "leo-embeddings/embeddings.zip" in message


def test_a_key_without_prefix_class_and_file_raises_naming_it(tmp_path):
    path = tmp_path / "test_embeddings.pkl"
    data = {"embeddings": np.ones((1, FEATURES), np.float32), "keys": ["n01-n02_5.JPEG"]}
    path.write_bytes(pickle.dumps(data, 2))

    with pytest.raises(ValueError, match=r"key 'n01-n02_5.JPEG' is not"):
        read_embedding_file(path)


def test_a_file_that_is_not_an_embedding_dict_raises_naming_it(tmp_path):
    path = tmp_path / "train_embeddings.pkl"
    path.write_bytes(pickle.dumps({"features": np.ones((2, 3))}, 2))

    with pytest.raises(ValueError, match=f"{path} must hold a dict with 'embeddings' and 'keys'"):
        read_embedding_file(path)


def test_a_truncated_file_raises_naming_it(tmp_path):
    path = tmp_path / "train_embeddings.pkl"
    write_split(path, "train", 2)
    path.write_bytes(path.read_bytes()[:100])

    with pytest.raises(ValueError, match=f"cannot read LEO embedding file {path}"):
        read_embedding_file(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "train_embeddings.pkl"
    path.write_bytes(pickle.dumps({"embeddings": _Exploit(), "keys": []}, 2))

    with pytest.raises(ValueError, match="refusing to load (posix|os).system"):
        read_embedding_file(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "kwargs",
    [{"dataset": "tieredImageNet", "view": "multiview"}, {"dataset": "mine", "view": "side"}],
)
def test_a_view_the_dataset_has_not_fails_when_the_source_is_built(tmp_path, kwargs):
    with pytest.raises(ValueError, match=f"data.source.view='{kwargs['view']}'.*has the view"):
        LEOEmbeddingSource(tmp_path, **kwargs)


def test_a_dataset_without_files_is_named_with_the_datasets_it_could_be(tmp_path):
    with pytest.raises(
        DataNotFoundError, match=r"imagenet/.*miniImageNet, tieredImageNet.*leo_layout"
    ):
        LEOEmbeddingSource(tmp_path, dataset="imagenet").prepare()


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


PUBLISHED = {  # outer lr, l2, orthogonality, dropout, kl, encoder penalty (docs/algorithm.md)
    "miniimagenet_5w1s": (2.739e-4, 3.623e-10, 0.188103, 0.3077, 0.756143, 5.757e-6),
    "miniimagenet_5w5s": (4.102e-4, 8.540e-9, 1.524e-3, 0.3003, 0.466387, 2.662e-7),
    "tieredimagenet_5w1s": (8.659e-4, 4.149e-10, 5.451e-3, 0.4751, 2.034e-3, 8.303e-5),
    "tieredimagenet_5w5s": (6.110e-4, 1.690e-10, 2.481e-2, 0.4152, 1.622811, 2.672e-5),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_embedding_experiments_carry_the_published_hyperparameters(name):
    cfg = compose_train(f"experiment={name}")
    model = cfg.model

    tuned = (
        model.lr,
        model.l2_weight,
        model.orthogonality_weight,
        model.dropout,
        model.kl_weight,
        model.encoder_penalty_weight,
    )
    assert tuned == pytest.approx(PUBLISHED[name], rel=1e-9)
    assert (model.latent_dim, model.inner_steps, model.finetune_steps) == (64, 5, 5)
    assert (cfg.data.meta_batch_size, cfg.data.n_query, cfg.data.k_shot) == (
        12,
        15,
        int(name[-2]),
    )
    assert model.backbone._target_.endswith("Flatten") and list(model.input_shape) == [640]
    assert model.channels_last is False and model.backbone_autocast is None
    assert cfg.data.image_size is None and cfg.data.channels is None


@pytest.mark.slow
def test_the_miniimagenet_experiment_trains_and_tests_on_files_in_the_original_format(root):
    cfg = compose_train(
        "experiment=miniimagenet_5w1s",
        f"data.source.root={root}",
        "model.latent_dim=8",
        "data.n_way=3",
        "data.n_query=2",
        "data.meta_batch_size=2",
        "data.val_episodes=4",
        "data.test_episodes=4",
    )
    L.seed_everything(0)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False)
    trainer = quiet_trainer(max_steps=3, val_check_interval=3)
    trainer.fit(module, datamodule=datamodule)
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)

    assert trainer.global_step == 3
    assert 0.0 <= metrics["test/acc"] <= 1.0


def test_a_written_file_reads_back_with_its_classes_and_unit_norm_features(tmp_path):
    features = torch.randn(5, 4)
    labels = torch.tensor([1, 0, 1, 2, 0])
    names = ["Korean/character01", "a-b", "c"]
    path = write_embedding_file(tmp_path / "test_embeddings.pkl", "test", features, labels, names)
    pool = read_embedding_file(path)
    assert pool.class_names == ("Korean_character01", "a_b", "c")  # sorted tokens: same order
    for c in range(3):
        rows = pool.index[c, : pool.counts[c]]
        expected = torch.nn.functional.normalize(features[labels == c], dim=1)
        assert torch.allclose(pool.data[rows], expected)


def test_a_file_that_would_merge_two_classes_is_refused_naming_them(tmp_path):
    with pytest.raises(ValueError, match=r"classes 'a-b' and 'a_b' would both be 'a_b'"):
        write_embedding_file(
            tmp_path / "x.pkl", "train", torch.ones(2, 3), torch.tensor([0, 1]), ["a-b", "a_b"]
        )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["", "a/b", "..", " mine"])
def test_leo_embeds_dataset_name_must_be_one_folders_name(name):
    with pytest.raises(ConfigError, match=r"leo_layout=.*expected a dataset name"):
        check_leo_layout(name)
