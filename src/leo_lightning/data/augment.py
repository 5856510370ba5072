"""Augmentation of training episodes (config group ``data/augment``).

Applied in the sampling path of the training stream only (validation and test episodes are
never augmented), to the uint8 images of a whole episode at once, support and query alike.
Every random number comes from the episode's own generator (``episode_generator``), drawn after
the episode's classes and examples, so an augmented episode is a function of (seed, index)
alone: the same for any number of DataLoader workers or ranks, and on resume. Class-level
rotations (Omniglot's 90-degree classes) are part of the data and stay as they are.

``none`` (the default) builds no augmentation; the stream is then exactly what it was without
this module. ``affine`` builds a `RandomAffine`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from leo_lightning.data.episode import Episode
from leo_lightning.declared import Declared, setting
from leo_lightning.errors import DataError

# An augmentation: uint8 images [M, C, H, W] and the episode's generator -> uint8 images.
Augmentation = Callable[[Tensor, torch.Generator], Tensor]


def no_augmentation() -> None:
    """What ``data/augment=none`` instantiates: no augmentation (the DataModule gets None)."""
    return None


class AffineParams(NamedTuple):
    """One affine distortion per example, each field [M]; the identity is (0, 0, 0, 1, 1, 0, 0)."""

    angle: Tensor  # rotation, degrees (positive turns clockwise on screen: y points down)
    shear_x: Tensor  # shear factors: x' = x + shear_x * y, y' = y + shear_y * x
    shear_y: Tensor
    scale_x: Tensor  # scale factors per axis
    scale_y: Tensor
    translate_x: Tensor  # shifts, as fractions of the image's width / height
    translate_y: Tensor

    @classmethod
    def identity(cls, n: int) -> AffineParams:
        zeros, ones = torch.zeros(n), torch.ones(n)
        return cls(zeros, zeros, zeros, ones, ones, zeros, zeros)


@dataclass
class AffineSettings(Declared):
    """data/augment=affine's settings, each declared once (Koch et al.'s ranges)."""

    PREFIX = "data.augment"

    degrees: float = setting(10.0, "rotation angle, uniform in [-degrees, degrees] (0..180)")
    shear: float = setting(
        0.3, "shear factors: x' = x + sx*y, y' = y + sy*x, sx, sy uniform in [-shear, shear] (< 1)"
    )
    scale: list[float] = setting([0.8, 1.2], "scale of each axis, uniform in [low, high]")
    translate: float = setting(
        0.02, "shift of each axis, uniform in [-translate, translate] image sides"
    )
    p: float = setting(
        0.5, "each part (rotation, shear, scale, shift) applies with this probability"
    )
    fill: int = setting(0, "value of pixels from outside the image (0: the dark background)")


class RandomAffine:
    """Random affine distortions per example, as in Koch et al. (2015), Siamese networks for
    one-shot image recognition (their ranges are the defaults): a rotation by an angle in
    [-degrees, degrees], shears x' = x + sx y and y' = y + sy x with sx, sy in [-shear, shear],
    scales per axis in [scale[0], scale[1]], and shifts per axis of up to ``translate`` times
    the image side (Koch et al.'s 2 px at 105 px is 0.02). Each of the four parts (rotation,
    shear, scale, shift) is applied to an example with probability ``p``, independently; all
    values are drawn uniformly. The distortion is about the image centre; pixels from outside
    the image are ``fill`` (0: the background of ink-bright images such as Omniglot's).
    Resampling is bilinear, then rounded back to uint8, so the identity returns the image."""

    def __init__(self, **settings: Any):
        """`settings`: AffineSettings by name, each one not given at its declared default."""
        s = AffineSettings.from_mapping(settings)
        self.degrees, self.shear, self.translate, self.p = s.degrees, s.shear, s.translate, s.p
        self.scale = tuple(float(v) for v in s.scale)
        self.fill = s.fill
        problems = affine_problems(s.degrees, s.shear, self.scale, s.translate, s.p, s.fill)
        if problems:
            raise DataError("; ".join(problems))

    def __repr__(self) -> str:
        return (
            f"RandomAffine(degrees={self.degrees}, shear={self.shear}, scale={self.scale}, "
            f"translate={self.translate}, p={self.p}, fill={self.fill})"
        )

    def sample(self, n: int, generator: torch.Generator) -> AffineParams:
        """The parameters of n examples: always 7 + 4 uniform numbers per example, whatever
        the settings, so that a setting never shifts the draws of another."""
        u = torch.rand((n, 7), generator=generator)
        on = (torch.rand((n, 4), generator=generator) < self.p).float()
        symmetric = 2 * u - 1  # uniform in [-1, 1)
        low, high = self.scale
        return AffineParams(
            angle=on[:, 0] * self.degrees * symmetric[:, 0],
            shear_x=on[:, 1] * self.shear * symmetric[:, 1],
            shear_y=on[:, 1] * self.shear * symmetric[:, 2],
            scale_x=1 + on[:, 2] * (low + (high - low) * u[:, 3] - 1),
            scale_y=1 + on[:, 2] * (low + (high - low) * u[:, 4] - 1),
            translate_x=on[:, 3] * self.translate * symmetric[:, 5],
            translate_y=on[:, 3] * self.translate * symmetric[:, 6],
        )

    def apply(self, images: Tensor, params: AffineParams) -> Tensor:
        """uint8 [M, C, H, W] -> uint8 [M, C, H, W], example i distorted by params[.][i]."""
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                "data/augment=affine distorts uint8 images [M, C, H, W], got "
                f"{images.dtype} of shape {list(images.shape)} (pre-computed features?)"
            )
        theta = _sampling_matrices(params)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        shifted = images.float() - self.fill  # grid_sample fills with 0: fill after the shift
        out = F.grid_sample(
            shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out.add_(self.fill).round_().clamp_(0, 255).to(torch.uint8)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        return self.apply(images, self.sample(len(images), generator))


def _sampling_matrices(params: AffineParams) -> Tensor:
    """[M, 2, 3]: for each output pixel (normalized coordinates, [-1, 1]) where to read the
    input, i.e. the inverse of x -> R(angle) Shear Scale x + shift."""
    radians = params.angle * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    rotation = torch.stack([cos, -sin, sin, cos], dim=-1).view(-1, 2, 2)
    ones = torch.ones_like(params.shear_x)
    shear = torch.stack([ones, params.shear_x, params.shear_y, ones], dim=-1).view(-1, 2, 2)
    scale = torch.diag_embed(torch.stack([params.scale_x, params.scale_y], dim=-1))
    inverse = torch.linalg.inv(rotation @ shear @ scale)
    shift = 2 * torch.stack([params.translate_x, params.translate_y], dim=-1)  # [-1, 1] units
    return torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)


def augment_episode(episode: Episode, augment: Augmentation, generator: torch.Generator) -> Episode:
    """The episode with its support and query images augmented together; labels unchanged."""
    n_support = len(episode.support_x)
    images = augment(torch.cat([episode.support_x, episode.query_x]), generator)
    return episode._replace(support_x=images[:n_support], query_x=images[n_support:])


def affine_problems(
    degrees: float, shear: float, scale: Sequence[float], translate: float, p: float, fill: int
) -> list[str]:
    """The settings of data/augment=affine that are out of range, one message each naming its
    key (validation.py reports them before a run starts; RandomAffine raises them)."""
    problems = []
    if not 0 <= degrees <= 180:
        problems.append(f"data.augment.degrees={degrees!r}: must be in [0, 180]")
    if not 0 <= shear < 1:  # |shear| < 1 keeps the shear invertible (1 - sx sy > 0)
        problems.append(f"data.augment.shear={shear!r}: must be in [0, 1)")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        problems.append(f"data.augment.scale={list(scale)!r}: must be [low, high], 0 < low <= high")
    if not 0 <= translate < 1:
        problems.append(f"data.augment.translate={translate!r}: must be in [0, 1) (image sides)")
    if not 0 <= p <= 1:
        problems.append(f"data.augment.p={p!r}: must be in [0, 1]")
    if not 0 <= fill <= 255:
        problems.append(f"data.augment.fill={fill!r}: must be in [0, 255]")
    return problems


__all__ = ["AffineParams", "Augmentation", "RandomAffine", "augment_episode", "no_augmentation"]
