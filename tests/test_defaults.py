"""A default is stated three times (YAML, schema, Python signature) and must be the same in all
three: a user reading any of them, or calling the class from Python, gets what a run does."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from conftest import ROOT
from omegaconf import OmegaConf

from leo_lightning.config import (
    AffineAugmentSchema,
    DataSchema,
    LatentStrategySchema,
    LEOSchema,
    MAMLSchema,
    PerTaskSchema,
)
from leo_lightning.data import EpisodicDataModule
from leo_lightning.data.augment import RandomAffine
from leo_lightning.module import LEOModule
from leo_lightning.strategies import MAML, Amortized, AmortizedPure, MetaSGD, PerTask, Universal

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
        ("model/leo.yaml", None, LEOSchema, LEOModule.__init__),
        ("strategy/per_task.yaml", "strategy", PerTaskSchema, PerTask.__init__),
        ("strategy/maml.yaml", "strategy", MAMLSchema, MAML.__init__),
        ("strategy/meta_sgd.yaml", "strategy", MAMLSchema, MetaSGD.__init__),
        ("data/augment/affine.yaml", None, AffineAugmentSchema, RandomAffine.__init__),
        ("strategy/amortized.yaml", None, LatentStrategySchema, Amortized.__init__),
        ("strategy/universal.yaml", None, LatentStrategySchema, Universal.__init__),
        ("strategy/amortized_pure.yaml", "strategy", LatentStrategySchema, AmortizedPure.__init__),
    ],
    ids=[
        "model",
        "per_task",
        "maml",
        "meta_sgd",
        "affine",
        "amortized",
        "universal",
        "amortized_pure",
    ],
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
