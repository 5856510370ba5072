"""Each default is declared once and everything else reads it: the model's settings in
training/settings.py, a strategy's in its spec. Where a default is still stated in more than
one place (the data's and the augmentation's keys: their YAML, schema and class signature) it
must be the same in each, so that a user reading any of them, or calling the class from Python,
gets what a run does."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from conftest import ROOT
from helpers import AMORTIZED
from omegaconf import OmegaConf

from leo_lightning.config.schemas import AffineAugmentSchema, DataSchema, LEOSchema, strategy_schema
from leo_lightning.data import EpisodicDataModule
from leo_lightning.data.augment import RandomAffine
from leo_lightning.strategies.catalog import built_in
from leo_lightning.training.module import LEOModule
from leo_lightning.training.settings import LEOSettings

# Keys whose YAML value is an interpolation or a choice of that file, not a default.
NOT_DEFAULTS = {
    "defaults",
    "_target_",
    "backbone",
    "input_shape",
    "source",
    "train_seed",
    "augment",  # the data/augment group
}


def yaml_values(path: str, package: str | None = None) -> dict:
    node = OmegaConf.load(ROOT / "conf" / path)
    node = node[package] if package else node
    values = OmegaConf.to_container(node, resolve=False)
    return {k: v for k, v in values.items() if k not in NOT_DEFAULTS}


def schema_defaults(schema) -> dict:
    out = {}
    for field in dataclasses.fields(schema):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return {k: v for k, v in out.items() if k not in NOT_DEFAULTS}


def signature_defaults(function) -> dict:
    params = inspect.signature(function).parameters.values()
    return {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in params
        if p.default is not inspect.Parameter.empty and p.name not in NOT_DEFAULTS
    }


@pytest.mark.parametrize(
    ("yaml", "package", "schema", "function"),
    [
        ("data/augment/affine.yaml", None, AffineAugmentSchema, RandomAffine.__init__),
    ],
    ids=["affine"],
)
def test_yaml_schema_and_python_defaults_agree(yaml, package, schema, function):
    in_yaml, in_schema, in_python = (
        yaml_values(yaml, package),
        schema_defaults(schema),
        signature_defaults(function),
    )
    assert in_yaml == in_schema == in_python


def test_data_defaults_agree_where_they_are_not_dataset_specific():
    """image_size and channels belong to each dataset's YAML; the rest are shared defaults."""
    specific = {"image_size", "channels"}
    in_yaml = {k: v for k, v in yaml_values("data/glyphs.yaml").items() if k not in specific}
    in_schema = {k: v for k, v in schema_defaults(DataSchema).items() if k not in specific}
    in_python = {
        k: v
        for k, v in signature_defaults(EpisodicDataModule.__init__).items()
        if k not in specific
    }
    assert in_yaml == in_schema == in_python


@pytest.mark.parametrize("strategy", built_in(), ids=lambda c: c.spec.name)
def test_a_strategy_s_schema_and_signature_take_its_spec_s_defaults(strategy):
    declared = strategy.spec.defaults()
    assert schema_defaults(strategy_schema(strategy)) == declared
    assert signature_defaults(strategy.__init__) == declared


@pytest.mark.parametrize("strategy", built_in(), ids=lambda c: c.spec.name)
def test_a_strategy_s_yaml_restates_none_of_its_settings(strategy):
    in_yaml = OmegaConf.load(ROOT / "conf" / "strategy" / f"{strategy.spec.name}.yaml")
    node = in_yaml.get("strategy", in_yaml)
    assert set(node) - {"_target_", "defaults"} == set()


def test_the_model_s_schema_and_a_module_built_from_python_take_the_declared_defaults():
    from helpers import CONV4

    declared = LEOSettings().as_dict()
    in_schema = {k: v for k, v in schema_defaults(LEOSchema).items() if k in declared}
    module = LEOModule(backbone=CONV4, strategy=AMORTIZED, input_shape=[1, 28, 28])
    in_module = {k: v for k, v in dict(module.hparams).items() if k in declared}
    assert in_schema == declared and in_module == declared


def test_the_model_s_yaml_restates_none_of_its_settings():
    in_yaml = OmegaConf.load(ROOT / "conf" / "model" / "leo.yaml")
    assert set(in_yaml) - {"defaults"} == {"_target_", "input_shape"}


def test_a_model_setting_that_does_not_exist_is_refused_naming_the_closest():
    from helpers import CONV4

    with pytest.raises(TypeError, match="model.latnet_dim: not a model setting; did you mean"):
        LEOModule(backbone=CONV4, strategy=AMORTIZED, input_shape=[1, 28, 28], latnet_dim=3)
