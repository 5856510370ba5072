"""Multiview features (leo-embed views=K, the original LEO's "multiview"): each example's
feature is the mean over its plain image and K - 1 seeded distortions, the same file whatever
the batch size, and no views without a distortion to draw them with."""

from __future__ import annotations

import pytest
import torch

from leo_lightning.data.augment import RandomAffine
from leo_lightning.jobs.embed import DISTORTION_BLOCK, image_features
from leo_lightning.models import Conv4
from leo_lightning.models.backbone import Flatten

CPU = torch.device("cpu")
M = DISTORTION_BLOCK + 37  # more examples than one block of distortions


def images() -> torch.Tensor:  # uint8 [M, 1, 12, 12], ink on a dark background
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (M, 1, 12, 12), generator=generator, dtype=torch.uint8)


def unchanged(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return batch


def test_one_view_is_the_feature_of_the_plain_image():
    x = images()
    assert torch.equal(image_features(Flatten(), x, 64, CPU), x.float().div(255).flatten(1))


def test_the_views_are_averaged():
    """Views that leave the image as it is average to its own feature."""
    x = images()
    many = image_features(Flatten(), x, 64, CPU, views=4, augment=unchanged)
    torch.testing.assert_close(many, x.float().div(255).flatten(1))


def test_the_views_are_distortions_drawn_from_the_seed():
    x, affine = images(), RandomAffine()
    plain = image_features(Flatten(), x, 64, CPU)
    three = image_features(Flatten(), x, 64, CPU, views=3, augment=affine, seed=0, split="test")
    again = image_features(Flatten(), x, 64, CPU, views=3, augment=affine, seed=0, split="test")
    other = image_features(Flatten(), x, 64, CPU, views=3, augment=affine, seed=1, split="test")
    assert torch.equal(three, again)  # the same file on every machine
    assert not torch.allclose(three, plain) and not torch.allclose(three, other)


@pytest.mark.parametrize("batch_size", [1, 7, DISTORTION_BLOCK, 300, 2 * DISTORTION_BLOCK])
def test_the_features_do_not_depend_on_the_batch_size(batch_size):
    """A GPU user embedding with larger batches gets the file a CPU user gets."""
    x, affine = images(), RandomAffine()
    backbone = Conv4(in_channels=1, channels=4, depth=2).eval()
    reference = image_features(backbone, x, 64, CPU, views=3, augment=affine, split="train")
    features = image_features(backbone, x, batch_size, CPU, views=3, augment=affine, split="train")
    torch.testing.assert_close(features, reference)
