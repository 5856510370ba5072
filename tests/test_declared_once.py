"""Every default is declared once, and everything else reads it: the model's settings in
training/settings.py, the episodes' in data/settings.py, the affine augmentation's in
data/augment.py, a strategy's in its spec. The config schemas are made from the declarations,
the classes fill what they are not given from them, and no YAML file restates a default."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ROOT
from helpers import AMORTIZED, CONV4
from omegaconf import OmegaConf

from leo_lightning.config.schemas import (
    AffineAugmentSchema,
    DataSchema,
    EvalSchema,
    LEOSchema,
    PredictSchema,
    TrainerSchema,
    TrainSchema,
    strategy_schema,
)
from leo_lightning.data.augment import AffineSettings, RandomAffine
from leo_lightning.data.settings import EpisodeSettings
from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.module import LEOModule
from leo_lightning.training.settings import LEOSettings

DECLARED = {
    "model": (LEOSettings, LEOSchema),
    "data": (EpisodeSettings, DataSchema),
    "affine": (AffineSettings, AffineAugmentSchema),
}


def defaults(cls) -> dict:
    """Each field's default ("???" where it has none)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


@pytest.mark.parametrize("group", DECLARED)
def test_a_schema_takes_its_defaults_from_the_declaration(group):
    declared, schema = DECLARED[group]
    in_schema = defaults(schema)
    assert {k: in_schema[k] for k in defaults(declared)} == defaults(declared)


def test_a_module_built_from_python_records_every_declared_default():
    module = LEOModule(backbone=CONV4, strategy=AMORTIZED, input_shape=[1, 28, 28])
    declared = defaults(LEOSettings)
    assert {k: module.hparams[k] for k in declared} == declared


def test_a_datamodule_and_an_augmentation_built_from_python_take_the_declared_defaults():
    from helpers import PoolSource

    from leo_lightning.data import EpisodicDataModule

    data, declared = EpisodicDataModule(PoolSource({})), EpisodeSettings()
    assert (data.shape.n_way, data.shape.k_shot, data.shape.n_query) == (5, 1, 15)
    assert (data.meta_batch_size, data.test_episodes, data.seed) == (
        declared.meta_batch_size,
        declared.test_episodes,
        declared.seed,
    )
    affine = RandomAffine()
    assert affine.scale == tuple(AffineSettings().scale) and affine.p == AffineSettings().p


YAML_GROUPS = [
    ("model/leo.yaml", None, LEOSettings),
    ("data/glyphs.yaml", None, EpisodeSettings),
    ("data/omniglot.yaml", None, EpisodeSettings),
    ("data/folder.yaml", None, EpisodeSettings),
    ("data/leo_embeddings.yaml", None, EpisodeSettings),
    ("data/augment/affine.yaml", None, AffineSettings),
    ("trainer/default.yaml", None, TrainerSchema),
    ("train.yaml", None, TrainSchema),
    ("eval.yaml", None, EvalSchema),
    ("predict.yaml", None, PredictSchema),
]


@pytest.mark.parametrize(("path", "package", "declared"), YAML_GROUPS, ids=lambda v: str(v))
def test_no_yaml_file_restates_a_declared_default(path, package, declared):
    node = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / path), resolve=False)
    restated = {
        key: value
        for key, value in defaults(declared).items()
        # ???: required, no default; _target_: what the file builds, named where it is built
        if key in node and node[key] == value and value != "???" and key != "_target_"
    }
    assert restated == {}


@pytest.mark.parametrize("strategy", built_in(), ids=lambda c: c.spec.name)
def test_a_strategy_s_schema_and_signature_take_its_spec_s_defaults(strategy):
    import inspect

    declared = strategy.spec.defaults()
    old_names = {m.old.removeprefix("strategy.") for m in strategy.spec.moved}  # aliases: None
    schema = defaults(strategy_schema(strategy))
    assert {k: v for k, v in schema.items() if k != "_target_" and k not in old_names} == declared
    signature = {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in inspect.signature(strategy.__init__).parameters.values()
        if p.default is not inspect.Parameter.empty
    }
    assert signature == declared


@pytest.mark.parametrize("strategy", built_in(), ids=lambda c: c.spec.name)
def test_a_strategy_s_yaml_restates_none_of_its_settings(strategy):
    in_yaml = OmegaConf.load(ROOT / "conf" / "strategy" / f"{strategy.spec.name}.yaml")
    node = in_yaml.get("strategy", in_yaml)
    assert set(node) - {"_target_", "defaults"} == set()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: LEOModule(CONV4, AMORTIZED, [1, 28, 28], latnet_dim=3), "model.latnet_dim"),
        (lambda: RandomAffine(degree=3), "data.augment.degree"),
    ],
    ids=["model", "affine"],
)
def test_a_setting_that_does_not_exist_is_refused_naming_the_closest(build, message):
    with pytest.raises(TypeError, match=f"{message}: not a setting.*did you mean"):
        build()
