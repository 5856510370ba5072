"""The named experiments of LEO's own protocol: the two pretrainings are one recipe on two
sources, and the frozen-feature experiment fits what they write."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from test_config import compose_pretrain, compose_train


def test_the_omniglot_features_experiment_is_the_frozen_features_experiment():
    """The name the published Omniglot rows were measured under keeps meaning the same run."""
    omniglot = OmegaConf.to_container(compose_train("experiment=omniglot_minimal_features"))
    generic = OmegaConf.to_container(compose_train("experiment=frozen_features"))
    assert omniglot == generic


def test_the_glyph_pretraining_is_the_omniglot_recipe_on_the_glyphs():
    glyphs = compose_pretrain("experiment=glyphs_pretrain")
    omniglot = compose_pretrain("experiment=omniglot_minimal_pretrain")
    assert glyphs.data.source._target_.endswith("GlyphSource")
    assert omniglot.data.source._target_.endswith("OmniglotSource")
    assert glyphs.data.augment == omniglot.data.augment  # the same affine distortions
    assert glyphs.pretrain == omniglot.pretrain and glyphs.trainer == omniglot.trainer


def test_the_frozen_features_width_is_the_pretrained_backbones():
    """experiment=frozen_features reads what either pretraining's Conv4 computes at its size."""
    for pretraining in ("glyphs_pretrain", "omniglot_minimal_pretrain"):
        cfg = compose_pretrain(f"experiment={pretraining}")
        backbone = instantiate(cfg.model.backbone)
        image = torch.zeros(1, *cfg.model.input_shape)  # [1, C, H, W]
        width = backbone.eval()(image).shape[1]
        assert [width] == list(compose_train("experiment=frozen_features").model.input_shape)
