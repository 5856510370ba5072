"""data/augment: random affine distortions of training episodes (leo_lightning.data.augment)."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import random_pool
from helpers import PoolSource, run_script
from hydra.utils import instantiate
from test_config import compose_train
from torch.utils.data import DataLoader

from leo_lightning.config.validation import config_problems
from leo_lightning.data import ClassPool, EpisodicDataModule
from leo_lightning.data.augment import AffineParams, RandomAffine
from leo_lightning.data.episodes import EpisodeShape, EpisodeStream
from leo_lightning.data.sampling import episode_generator, sample_episode
from leo_lightning.errors import DataError

SHAPE = EpisodeShape(5, 1, 3)


def images(n: int = 6, channels: int = 1, size: int = 28, low: int = 0, high: int = 256):
    g = torch.Generator().manual_seed(1)
    return torch.randint(low, high, (n, channels, size, size), generator=g, dtype=torch.uint8)


def params(n: int, **fields) -> AffineParams:
    """The identity for n examples, with the given fields set for all of them."""
    return AffineParams.identity(n)._replace(**{k: torch.full((n,), v) for k, v in fields.items()})


def stream(augment=None, seed: int = 1, pool=None) -> EpisodeStream:
    return EpisodeStream(pool or random_pool(), SHAPE, seed=seed, batch_size=2, augment=augment)


def batches(dataset, n: int = 3, workers: int = 0) -> list:
    return list(itertools.islice(iter(DataLoader(dataset, batch_size=2, num_workers=workers)), n))


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y) for ea, eb in zip(a, b) for x, y in zip(ea, eb)
    )


# ------------------------------------------------------------------------ the transform itself


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 84), (1, 105)])
def test_identity_parameters_return_the_images_unchanged(channels, size):
    x = images(channels=channels, size=size)
    assert torch.equal(RandomAffine().apply(x, AffineParams.identity(len(x))), x)


def test_a_shift_of_one_pixel_moves_the_image_by_one_pixel_and_fills_the_edge():
    x = images(size=12)
    out = RandomAffine(fill=7).apply(x, params(len(x), translate_x=1 / 12))
    assert torch.equal(out[..., 1:], x[..., :-1])
    assert (out[..., 0] == 7).all()


def test_a_rotation_by_90_degrees_turns_the_image_clockwise():
    x = images(size=12)
    out = RandomAffine().apply(x, params(len(x), angle=90.0))
    assert torch.equal(out, torch.rot90(x, -1, dims=(-2, -1)))


def test_output_is_uint8_of_the_input_shape_within_the_input_and_fill_values():
    x = images(n=40, channels=3, size=20, low=60, high=200)
    out = RandomAffine(degrees=30, scale=(0.5, 1.5), translate=0.2, p=1.0, fill=60)(
        x, torch.Generator().manual_seed(0)
    )
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert int(out.min()) >= 60 and int(out.max()) <= 199


def test_each_example_gets_its_own_distortion():
    x = images(n=1).expand(8, -1, -1, -1)  # eight copies of one image
    out = RandomAffine(p=1.0)(x, torch.Generator().manual_seed(0))
    assert len({o.numpy().tobytes() for o in out}) == 8


def test_probability_zero_applies_nothing():
    x = images()
    assert torch.equal(RandomAffine(p=0.0)(x, torch.Generator().manual_seed(0)), x)


def test_features_are_refused_naming_the_setting():
    with pytest.raises(DataError, match="data/augment=affine distorts uint8 images"):
        RandomAffine()(torch.zeros(4, 640), torch.Generator())


def test_out_of_range_settings_fail_when_built_naming_the_key():
    with pytest.raises(DataError, match=r"data.augment.shear=1.5: must be in \[0, 1\)"):
        RandomAffine(shear=1.5)


# ----------------------------------------------------------------- in the training stream


def test_same_seed_and_index_give_the_same_augmented_episode():
    assert same(batches(stream(RandomAffine())), batches(stream(RandomAffine())))


def test_another_seed_gives_other_augmented_episodes():
    a, b = batches(stream(RandomAffine(), seed=1)), batches(stream(RandomAffine(), seed=2))
    assert not any(torch.equal(x.support_x, y.support_x) for x, y in zip(a, b))


def test_augmented_stream_does_not_depend_on_the_worker_count():
    augmented = stream(RandomAffine())
    assert same(batches(augmented), batches(augmented, workers=2))


def test_augmentation_changes_images_but_not_classes_examples_or_labels():
    plain, augmented = batches(stream()), batches(stream(RandomAffine(p=1.0)))
    for p, a in zip(plain, augmented):
        assert torch.equal(p.support_y, a.support_y) and torch.equal(p.query_y, a.query_y)
        assert torch.equal(p.index, a.index)
        assert not torch.equal(p.support_x, a.support_x)
        assert not torch.equal(p.query_x, a.query_x)
    # with nothing applied, the very same examples come out: augmentation acts after sampling
    assert same(plain, batches(stream(RandomAffine(p=0.0))))


def test_without_augmentation_the_stream_is_the_plain_seeded_episodes():
    pool = random_pool()
    episode = stream(pool=pool).episode(batch=1, position=1)
    expected = sample_episode(pool, 5, 1, 3, episode_generator(1, "train", 3))
    assert all(torch.equal(a, b) for a, b in zip(episode[:4], expected))


def datamodule(augment=None) -> EpisodicDataModule:
    pools = {"train": random_pool(10)}
    pools.update(val=random_pool(6, seed=1), test=random_pool(6, seed=2))
    dm = EpisodicDataModule(
        PoolSource(pools),
        image_size=28,
        channels=1,
        n_query=3,
        meta_batch_size=2,
        val_episodes=8,
        test_episodes=8,
        augment=augment,
    )
    dm.setup("fit")
    return dm


def test_validation_and_test_episodes_are_never_augmented():
    plain, augmented = datamodule(), datamodule(RandomAffine(p=1.0))
    assert same(list(plain.val_dataloader()), list(augmented.val_dataloader()))
    assert same(list(plain.test_dataloader()), list(augmented.test_dataloader()))
    first = [next(iter(dm.train_dataloader())) for dm in (plain, augmented)]
    assert not torch.equal(first[0].support_x, first[1].support_x)


def test_augmenting_features_fails_at_setup_naming_the_setting():
    features = ClassPool.from_grouped(torch.randn(6, 4, 16))
    pools = {"train": features, "val": features, "test": features}
    dm = EpisodicDataModule(PoolSource(pools), n_way=2, n_query=2, augment=RandomAffine())
    with pytest.raises(DataError, match="data.augment .*pre-computed features"):
        dm.setup("fit")


# --------------------------------------------------------------------------------- config


def test_augment_none_is_the_default_and_builds_no_augmentation():
    cfg = compose_train()
    assert cfg.data.augment._target_.endswith("no_augmentation")
    assert instantiate(cfg.data).augment is None


def test_augment_affine_builds_random_affine_with_the_configured_ranges():
    cfg = compose_train("data/augment=affine", "data.augment.degrees=5", "data.augment.p=1")
    augment = instantiate(cfg.data).augment
    assert isinstance(augment, RandomAffine) and (augment.degrees, augment.p) == (5, 1)
    assert augment.scale == (0.8, 1.2)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("degrees", 200.0, "data.augment.degrees=200.0: must be in [0, 180]"),
        ("shear", 1.0, "data.augment.shear=1.0: must be in [0, 1)"),
        ("scale", [1.2, 0.8], "data.augment.scale=[1.2, 0.8]: must be [low, high]"),
        ("translate", -0.1, "data.augment.translate=-0.1: must be in [0, 1)"),
        ("p", 1.5, "data.augment.p=1.5: must be in [0, 1]"),
        ("fill", 300, "data.augment.fill=300: must be in [0, 255]"),
    ],
)
def test_each_out_of_range_affine_setting_is_a_config_problem_naming_its_key(key, value, message):
    cfg = compose_train("data/augment=affine")
    cfg.data.augment[key] = value
    problems = [p for p in config_problems(cfg) if p.startswith("data.augment")]
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_an_infinite_affine_setting_is_reported_once():
    cfg = compose_train("data/augment=affine")
    cfg.data.augment.degrees = float("inf")
    assert config_problems(cfg) == ["data.augment.degrees=inf: must be a finite number"]


def test_affine_on_pre_computed_features_is_a_config_problem():
    cfg = compose_train("experiment=miniimagenet_5w1s", "data/augment=affine")
    assert any(
        "data.augment: data/augment=affine distorts images" in p for p in config_problems(cfg)
    )


def test_train_script_exits_2_on_a_bad_affine_setting_before_any_work(tmp_path):
    proc = run_script("train.py", tmp_path, "data/augment=affine", "data.augment.p=2", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "data.augment.p=2.0: must be in [0, 1]" in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "outputs").exists()
