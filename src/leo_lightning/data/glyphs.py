"""Procedurally generated handwritten-like characters ("glyphs"): a synthetic Omniglot.

Why this exists: the project needs a few-shot dataset that works anywhere (CI, laptops,
air-gapped clusters) without downloads or licences. Glyphs mimic the structure that makes
Omniglot a good few-shot benchmark: thousands of *classes* (characters), each with a small
number of *examples* drawn by different "hands". A class is a random composition of 1-4
smooth pen strokes; every example re-draws the same strokes with jittered control points, a
small random affine transform and a different pen width. Classes therefore differ in stroke
count and shape, while examples of one class are clearly the same character.

Design choices:

* Strokes are centripetal Catmull-Rom splines through 3-5 control points produced by a
  smooth random walk (random heading, per-stroke curl and wiggle). Centripetal
  parameterisation never forms cusps or self-intersections within a span, even between
  unevenly spaced points, so strokes look like pen trajectories rather than scribbles.
* Rendering is analytic and anti-aliased: a pixel's ink is ``clamp(half_width + 0.5 - d, 0,
  1)`` where ``d`` is the distance from its centre to the nearest polyline segment of the
  sampled splines. That needs no rasteriser dependency, works for any image size and gives
  the same soft edges at 28 px and at 105 px.
* Everything is vectorised in torch and processed in small chunks. The chunks are sized to
  stay in the CPU caches (a few MB per temporary), which turned out to be several times
  faster than large batches because the work is memory bound.
* All randomness comes from a local :class:`torch.Generator`, and all random numbers are
  drawn up front, before chunking, so the output is bit-identical regardless of chunk size
  or thread count (rendering uses only element-wise operations and ``amin``, no reductions
  whose summation order could depend on the parallel split).
* Each split gets its own generator seed derived from ``(seed, split name)`` with SHA-256, so
  train/val/test consist of different random characters and the derivation is stable across
  Python processes (unlike ``hash()``, which is salted per process).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.files import atomic_save
from leo_lightning.errors import DataError

__all__ = [
    "DEFAULT_SPLIT_CLASSES",
    "GENERATOR_VERSION",
    "GlyphSource",
    "load_glyph_splits",
    "render_glyphs",
]

logger = logging.getLogger(__name__)

# Bump whenever the drawing code or its constants change: it is part of the cache digest, so
# stale caches rendered by an older generator are never picked up.
GENERATOR_VERSION = 1

# Read-only default so that the signature has no mutable default argument.
DEFAULT_SPLIT_CLASSES: Mapping[str, int] = MappingProxyType(
    {"train": 3000, "val": 300, "test": 300}
)

_MIN_IMAGE_SIZE = 8
_REFERENCE_SIZE = 28.0  # pen widths below are specified at this resolution

# Character structure.
_MAX_STROKES = 4
_MAX_POINTS = 5  # control points per stroke are drawn from [_MIN_POINTS, _MAX_POINTS]
_MIN_POINTS = 3
_STROKE_COUNT_PROBS = (0.12, 0.35, 0.33, 0.2)  # P(1 stroke), ..., P(4 strokes)
_CONNECT_PROB = 0.55  # probability that a later stroke starts on a previous stroke

# Per-example variation ("different hands").
_JITTER_STD = 0.02  # control point jitter, in units of the image side
_MAX_ROTATION = math.radians(10.0)
_SCALE_RANGE = (0.85, 1.1)
_MAX_ASPECT_LOG = 0.06  # anisotropic scale factor exp(U(-a, a))
_MAX_SHEAR = 0.12
_MAX_TRANSLATION = 0.05
_WIDTH_RANGE_PX = (1.2, 2.2)  # pen width at _REFERENCE_SIZE, scaled with image_size

# Chunking: number of float32 elements in the largest temporary ([B, rows, W, segments]).
# 2**19 elements = 2 MiB, which keeps the temporaries in L2/L3 cache on typical CPUs.
_CHUNK_ELEMENTS = 2**19


@dataclass(frozen=True)
class _ClassSpecs:
    """The random character definitions shared by all examples of each class."""

    ctrl: torch.Tensor  # [C, S, K, 2] control points in the unit square (x right, y down)
    n_points: torch.Tensor  # [C, S] number of valid control points per stroke (int64)
    n_strokes: torch.Tensor  # [C] number of valid strokes (int64)
    jitter_src: torch.Tensor  # [C, S*K] flat point index whose jitter each point reuses


@dataclass(frozen=True)
class _ExampleParams:
    """Per-example nuisance parameters, flattened over (class, example)."""

    jitter: torch.Tensor  # [N, S*K, 2]
    affine: torch.Tensor  # [N, 2, 2]
    shift: torch.Tensor  # [N, 2]
    half_width: torch.Tensor  # [N] in pixels


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise DataError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"seed must be an int, got {seed!r}")
    return seed


def _uniform(gen: torch.Generator, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (high - low) + low


def _sample_class_specs(n_classes: int, gen: torch.Generator) -> _ClassSpecs:
    """Draw the stroke skeletons of ``n_classes`` characters.

    Strokes are built by a smooth random walk rather than by placing independent random
    points, because independent points give zig-zag scribbles; a walk with a per-stroke curl
    (``bend``) and small random turns (``wiggle``) gives arcs, hooks, S-shapes and near
    straight bars, which is what pen strokes look like. Later strokes often start on a point
    of an earlier stroke, so strokes connect and cross as in real scripts. Finally every
    character is centred and scaled to a common extent so that size is not a class cue.
    """
    c, s_max, k_max = n_classes, _MAX_STROKES, _MAX_POINTS
    probs = torch.tensor(_STROKE_COUNT_PROBS, dtype=torch.float64)
    cum = torch.cumsum(probs, 0)[:-1].float()
    n_strokes = torch.bucketize(torch.rand(c, generator=gen), cum, right=True) + 1  # [C]
    n_points = torch.randint(_MIN_POINTS, _MAX_POINTS + 1, (c, s_max), generator=gen)  # [C, S]
    # A lone stroke gets the maximum number of points, so one-stroke characters are not arcs.
    n_points[:, 0] = torch.where(n_strokes == 1, _MAX_POINTS, n_points[:, 0])

    ctrl = torch.zeros(c, s_max, k_max, 2)  # [C, S, K, 2]
    jitter_src = torch.arange(s_max * k_max).repeat(c, 1)  # [C, S*K]
    rows = torch.arange(c)
    for s in range(s_max):
        start = _uniform(gen, (c, 2), 0.2, 0.8)  # [C, 2]
        # Drawn for every stroke (even s == 0) so the random stream layout is simple.
        connect = torch.rand(c, generator=gen) < _CONNECT_PROB
        prev_stroke = (torch.rand(c, generator=gen) * s).long()  # [C] in [0, s)
        prev_point = (torch.rand(c, generator=gen) * n_points[rows, prev_stroke]).long()
        heading = torch.rand(c, generator=gen) * (2 * math.pi)
        # Connected strokes leave the anchor at 50-130 degrees to the anchor's stroke, giving
        # T/X/L-like junctions instead of strokes that retrace their parent.
        junction = _uniform(gen, (c,), math.radians(50), math.radians(130))
        junction = torch.where(torch.rand(c, generator=gen) < 0.5, junction, -junction)
        if s > 0:
            anchor = ctrl[rows, prev_stroke, prev_point]  # [C, 2]
            last = n_points[rows, prev_stroke] - 1
            ahead = ctrl[rows, prev_stroke, torch.minimum(prev_point + 1, last)]
            behind = ctrl[rows, prev_stroke, (prev_point - 1).clamp(min=0)]
            tangent = ahead - behind  # [C, 2]
            along = torch.atan2(tangent[:, 1], tangent[:, 0])
            start = torch.where(connect[:, None], anchor, start)
            heading = torch.where(connect, along + junction, heading)
            # Share the anchor's (resolved) jitter so connected strokes stay connected.
            anchor_src = jitter_src[rows, prev_stroke * k_max + prev_point]
            jitter_src[:, s * k_max] = torch.where(connect, anchor_src, s * k_max)
        bend = _uniform(gen, (c,), -0.8, 0.8)  # systematic turn per step (curl)
        wiggle = _uniform(gen, (c,), 0.1, 0.6)  # std of the random turn per step
        if s == 0:
            # A lone stroke must curl noticeably: a near-straight bar as a whole character is
            # too easily confused with other bars once rotation and jitter are applied.
            lone = n_strokes == 1
            bend = torch.where(lone, bend.sign() * (0.4 + 0.75 * bend.abs()), bend)
            wiggle = torch.where(lone, wiggle + 0.2, wiggle)
        steps = _uniform(gen, (c, k_max - 1), 0.16, 0.34)
        turns = torch.randn(c, k_max - 1, generator=gen)
        point = start
        ctrl[:, s, 0] = point
        for k in range(1, k_max):
            if k > 1:  # the first segment keeps the initial heading
                heading = heading + bend + wiggle * turns[:, k - 1]
            step = torch.stack([torch.cos(heading), torch.sin(heading)], dim=-1)  # [C, 2]
            point = point + steps[:, k - 1, None] * step
            ctrl[:, s, k] = point

    # Centre each character and scale its longest side to a common extent.
    stroke_ok = torch.arange(s_max)[None, :] < n_strokes[:, None]  # [C, S]
    point_ok = torch.arange(k_max)[None, None, :] < n_points[:, :, None]  # [C, S, K]
    valid = (stroke_ok[:, :, None] & point_ok)[..., None]  # [C, S, K, 1]
    flat = ctrl.reshape(c, -1, 2)
    lo = torch.where(valid.reshape(c, -1, 1), flat, math.inf).amin(1)  # [C, 2]
    hi = torch.where(valid.reshape(c, -1, 1), flat, -math.inf).amax(1)  # [C, 2]
    extent = (hi - lo).amax(-1).clamp_min(1e-3)  # [C]
    target = _uniform(gen, (c,), 0.56, 0.66)
    scale = (target / extent)[:, None, None, None]
    ctrl = (ctrl - ((lo + hi) / 2)[:, None, None, :]) * scale + 0.5
    return _ClassSpecs(ctrl=ctrl, n_points=n_points, n_strokes=n_strokes, jitter_src=jitter_src)


def _sample_example_params(
    specs: _ClassSpecs, examples_per_class: int, image_size: int, gen: torch.Generator
) -> _ExampleParams:
    """Draw the per-example nuisances (handwriting variation), all up front.

    Drawing everything before rendering makes the output independent of the chunking.
    """
    c = specs.ctrl.shape[0]
    n = c * examples_per_class
    n_pts = _MAX_STROKES * _MAX_POINTS
    jitter = torch.randn(c, examples_per_class, n_pts, 2, generator=gen) * _JITTER_STD
    src = specs.jitter_src[:, None, :, None].expand(c, examples_per_class, n_pts, 2)
    jitter = jitter.gather(2, src).reshape(n, n_pts, 2)  # [N, S*K, 2]

    angle = _uniform(gen, (n,), -_MAX_ROTATION, _MAX_ROTATION)
    scale = _uniform(gen, (n,), *_SCALE_RANGE)
    aspect = torch.exp(_uniform(gen, (n,), -_MAX_ASPECT_LOG, _MAX_ASPECT_LOG))
    shear = _uniform(gen, (n,), -_MAX_SHEAR, _MAX_SHEAR)
    shift = _uniform(gen, (n, 2), -_MAX_TRANSLATION, _MAX_TRANSLATION)
    width = _uniform(gen, (n,), *_WIDTH_RANGE_PX) * (image_size / _REFERENCE_SIZE)

    # affine = rotation @ [[1, shear], [0, 1]] @ diag(sx, sy), written out element-wise (no
    # matmul) so that no reduction order can depend on the thread count.
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = scale * aspect, scale / aspect
    affine = torch.stack(
        [
            torch.stack([cos * sx, (cos * shear - sin) * sy], -1),
            torch.stack([sin * sx, (sin * shear + cos) * sy], -1),
        ],
        -2,
    )  # [N, 2, 2]
    return _ExampleParams(jitter=jitter, affine=affine, shift=shift, half_width=width / 2)


def _catmull_rom(ctrl: torch.Tensor, n_points: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Sample centripetal Catmull-Rom splines through variable-length control point lists.

    ``ctrl`` is [B, S, K, 2] with ``n_points`` [B, S] valid points per stroke (>= 2); the
    padding beyond ``n_points`` is ignored. Returns [B, S, n_samples, 2]: samples spread
    evenly (in spline parameter) over the valid spans, so no work is wasted on padding.
    Missing neighbours at the stroke ends are reflected (2*P0 - P1) so the end tangents are
    natural and no knot interval is zero.
    """
    b, s, k, _ = ctrl.shape
    last = (n_points - 1)[..., None]  # [B, S, 1]
    g = torch.linspace(0.0, 1.0, n_samples)[None, None, :] * last  # [B, S, M] global param
    span = g.floor().long().clamp(max=last - 1)  # [B, S, M]
    u = g - span  # [B, S, M] local param in [0, 1]

    def take(idx: torch.Tensor) -> torch.Tensor:
        idx = torch.minimum(idx.clamp(min=0), last)
        return ctrl.gather(2, idx[..., None].expand(b, s, n_samples, 2))  # [B, S, M, 2]

    p1, p2 = take(span), take(span + 1)
    p0 = torch.where((span == 0)[..., None], 2 * p1 - p2, take(span - 1))
    p3 = torch.where((span + 2 > last)[..., None], 2 * p2 - p1, take(span + 2))

    def knot(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
        # alpha = 0.5 (centripetal): |pb - pa| ** 0.5 == sqrt(sqrt(squared distance)).
        # sqrt is correctly rounded on every code path, unlike pow.
        return (pb - pa).square().sum(-1).clamp_min(1e-12).sqrt().sqrt()[..., None]

    t0 = torch.zeros_like(u)[..., None]
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    t = t1 + u[..., None] * (t2 - t1)  # [B, S, M, 1]

    # Barry-Goldman pyramidal evaluation.
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    return ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)


def _rasterize_rows(
    start: torch.Tensor,
    delta: torch.Tensor,
    half_width: torch.Tensor,
    image_size: int,
    row0: int,
    row1: int,
) -> torch.Tensor:
    """Anti-aliased ink for pixel rows ``[row0, row1)`` of a batch of polylines.

    ``start`` and ``delta`` are [B, N, 2] segment start points and direction vectors in
    pixel units. Every stroke must end with a zero-length segment at its last point (see
    :func:`_render_chunk`); that allows the cheap squared-distance bound

        ``|p-a|^2 - s * clamp(s / |ab|^2, 0, 1)``  with  ``s = (p-a).ab``,

    which is exact when the closest point is inside the segment or at its start, and an
    over-estimate (by ``s - |ab|^2``) only when the closest point is the end point ``b`` --
    which is the start of the next segment (or of the terminal zero-length one), where it is
    measured exactly, so the minimum over segments is exact. Using the separable pixel grid,
    the [B, R, W, N] work is seven memory passes, the bottleneck of the whole generator.
    Returns [B, row1 - row0, W] float32 intensities in [0, 1].
    """
    centers = torch.arange(image_size, dtype=start.dtype) + 0.5  # [W]
    inv_len2 = 1.0 / delta.square().sum(-1).clamp_min(1e-8)  # [B, N]
    dx = centers[None, :, None] - start[:, None, :, 0]  # [B, W, N]
    dy = centers[None, row0:row1, None] - start[:, None, :, 1]  # [B, R, N]
    # proj: [B, R, W, N] = (p - a) . ab
    proj = (dy * delta[:, None, :, 1]).unsqueeze(2) + (dx * delta[:, None, :, 0]).unsqueeze(1)
    along = (proj * inv_len2[:, None, None, :]).clamp_(0.0, 1.0).mul_(proj)  # [B, R, W, N]
    dist2 = torch.add(dy.square().unsqueeze(2), dx.square().unsqueeze(1), out=proj)  # |p-a|^2
    dist = dist2.sub_(along).amin(-1).clamp_min_(0.0).sqrt_()  # [B, R, W]
    return (half_width[:, None, None] + 0.5 - dist).clamp_(0.0, 1.0)


def _render_chunk(
    specs: _ClassSpecs,
    params: _ExampleParams,
    examples_per_class: int,
    image_size: int,
    index: torch.Tensor,
    n_strokes: int,
    n_samples: int,
    out: torch.Tensor,
) -> None:
    """Render the flat examples ``index`` (all with ``n_strokes`` strokes) into ``out``."""
    cls = index // examples_per_class
    b = index.shape[0]
    shape = (b, _MAX_STROKES, _MAX_POINTS, 2)
    ctrl = specs.ctrl[cls] + params.jitter[index].reshape(shape)  # [B, S, K, 2]
    ctrl = ctrl[:, :n_strokes]  # padding strokes are never rendered
    x, y = ctrl[..., 0] - 0.5, ctrl[..., 1] - 0.5  # [B, S', K] about the image centre
    m = params.affine[index][:, None, None]  # [B, 1, 1, 2, 2]
    shift = params.shift[index][:, None, None] + 0.5  # [B, 1, 1, 2]
    ctrl = torch.stack(
        [m[..., 0, 0] * x + m[..., 0, 1] * y, m[..., 1, 0] * x + m[..., 1, 1] * y], dim=-1
    )
    ctrl = (ctrl + shift) * image_size  # [B, S', K, 2] unit square -> pixel coordinates
    curves = _catmull_rom(ctrl, specs.n_points[cls, :n_strokes], n_samples)  # [B, S', M, 2]
    # Each sample starts a segment to the next sample; the last sample of a stroke starts a
    # zero-length segment, which _rasterize_rows needs to measure the stroke end exactly.
    delta = torch.zeros_like(curves)
    delta[:, :, :-1] = curves[:, :, 1:] - curves[:, :, :-1]
    start = curves.reshape(b, -1, 2)  # [B, N, 2] with N = S' * M
    delta = delta.reshape(b, -1, 2)  # [B, N, 2]
    half_width = params.half_width[index]

    n_segments = start.shape[1]
    rows_per_block = max(1, min(image_size, _CHUNK_ELEMENTS // (image_size * n_segments)))
    for row0 in range(0, image_size, rows_per_block):
        row1 = min(image_size, row0 + rows_per_block)
        ink = _rasterize_rows(start, delta, half_width, image_size, row0, row1)
        out[index, row0:row1] = ink.mul_(255.0).round_().to(torch.uint8)


def render_glyphs(
    n_classes: int, examples_per_class: int, image_size: int, seed: int
) -> torch.Tensor:
    """Render ``n_classes`` random characters with ``examples_per_class`` drawings each.

    Returns a uint8 tensor [n_classes, examples_per_class, 1, image_size, image_size] with
    bright ink (255) on a black background (0), the MNIST/inverted-Omniglot convention, so
    zero padding and max pooling treat the background naturally.

    The result depends only on the arguments: repeated calls give bit-identical tensors, also
    across chunk sizes and thread counts (rendering uses only element-wise ops and ``amin``,
    and all random numbers are drawn before chunking). The global RNG is neither used nor
    modified. Bit-identity across different CPUs or torch builds is not promised, which is
    one reason :func:`load_glyph_splits` caches the rendered tensors.
    """
    _check_int("n_classes", n_classes, 1)
    _check_int("examples_per_class", examples_per_class, 1)
    _check_int("image_size", image_size, _MIN_IMAGE_SIZE)
    _check_seed(seed)

    gen = torch.Generator().manual_seed(seed % 2**64)
    specs = _sample_class_specs(n_classes, gen)
    params = _sample_example_params(specs, examples_per_class, image_size, gen)

    # Enough samples per spline span that chords stay ~1-2 px long at any resolution (spans are
    # ~4-8 px at 28 px); their sagitta is then far below a pixel.
    n_samples = (_MAX_POINTS - 1) * max(4, math.ceil(image_size / 7)) + 1
    out = torch.empty(n_classes * examples_per_class, image_size, image_size, dtype=torch.uint8)
    strokes_per_example = specs.n_strokes.repeat_interleave(examples_per_class)  # [N]
    # Group by stroke count so that no work is spent on padding strokes.
    for n_strokes in range(1, _MAX_STROKES + 1):
        group = torch.nonzero(strokes_per_example == n_strokes).flatten()
        if group.numel() == 0:
            continue
        per_example = image_size * image_size * n_strokes * n_samples
        batch = max(1, _CHUNK_ELEMENTS // per_example)
        for first in range(0, group.numel(), batch):
            index = group[first : first + batch]
            _render_chunk(
                specs, params, examples_per_class, image_size, index, n_strokes, n_samples, out
            )
    return out.view(n_classes, examples_per_class, 1, image_size, image_size)


def _split_seed(seed: int, split: str) -> int:
    """Stable per-split seed: SHA-256 of (seed, split), so splits are different characters."""
    digest = hashlib.sha256(f"glyphs:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _cache_digest(classes: Mapping[str, int], examples_per_class: int) -> str:
    # Splits are rendered independently, so their order does not change the content: sort.
    key = {
        "classes": sorted(classes.items()),
        "examples_per_class": examples_per_class,
        "generator_version": GENERATOR_VERSION,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def _check_classes(classes: object) -> dict[str, int]:
    if not isinstance(classes, Mapping):
        raise DataError(f"classes must be a mapping of split name -> class count, got {classes!r}")
    if len(classes) == 0:
        raise DataError("classes must name at least one split, got an empty mapping")
    checked: dict[str, int] = {}
    for name, count in classes.items():
        if not isinstance(name, str) or not name:
            raise DataError(f"classes: split names must be non-empty strings, got {name!r}")
        _check_int(f"classes[{name!r}]", count, 1)
        checked[name] = count
    return checked


def _is_valid_cache(
    data: object, classes: Mapping[str, int], examples_per_class: int, image_size: int
) -> bool:
    if not isinstance(data, dict):
        return False
    for name, count in classes.items():
        tensor = data.get(name)
        expected = (count, examples_per_class, 1, image_size, image_size)
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.uint8:
            return False
        if tuple(tensor.shape) != expected:
            return False
    return True


def load_glyph_splits(
    root: str | os.PathLike,
    image_size: int = 28,
    seed: int = 0,
    classes: Mapping[str, int] = DEFAULT_SPLIT_CLASSES,
    examples_per_class: int = 20,
) -> dict[str, torch.Tensor]:
    """Return ``{split: uint8 tensor [n_classes, examples_per_class, 1, H, W]}``.

    The splits are rendered once and cached under
    ``root/glyphs/glyphs-{image_size}px-seed{seed}-{digest}.pt``; ``digest`` covers the class
    counts, ``examples_per_class`` and :data:`GENERATOR_VERSION`, so changing any of them (or
    the drawing code, with a version bump) never reuses a stale file. A corrupt or mismatching
    cache file is logged and re-rendered. The returned dict follows the order of ``classes``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise DataError(f"root must be a str or os.PathLike, got {root!r}")
    _check_int("image_size", image_size, _MIN_IMAGE_SIZE)
    _check_seed(seed)
    _check_int("examples_per_class", examples_per_class, 1)
    checked = _check_classes(classes)

    digest = _cache_digest(checked, examples_per_class)
    path = Path(root) / "glyphs" / f"glyphs-{image_size}px-seed{seed}-{digest}.pt"
    if path.exists():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any unreadable file (truncated zip, bad pickle, ...)
            logger.warning("Glyph cache %s is unreadable (%s); re-rendering it", path, error)
        else:
            if _is_valid_cache(data, checked, examples_per_class, image_size):
                logger.info("Loading glyph splits from cache %s", path)
                return {name: data[name] for name in checked}
            logger.warning("Glyph cache %s does not match the request; re-rendering it", path)

    total = sum(checked.values())
    logger.info(
        "Rendering %d glyph classes x %d examples at %d px (%s) to %s",
        total,
        examples_per_class,
        image_size,
        ", ".join(f"{name}={count}" for name, count in checked.items()),
        path,
    )
    data = {
        name: render_glyphs(count, examples_per_class, image_size, _split_seed(seed, name))
        for name, count in checked.items()
    }
    atomic_save(data, path)
    return data


class GlyphSource:
    """Procedural characters, rendered once per (size, seed, class counts) and cached as uint8."""

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int = 28,
        seed: int = 0,
        train_classes: int = 3000,
        val_classes: int = 300,
        test_classes: int = 300,
        examples_per_class: int = 20,
    ):
        self.root, self.image_size, self.seed = root, image_size, seed
        self.classes = {"train": train_classes, "val": val_classes, "test": test_classes}
        self.examples_per_class = examples_per_class

    def _splits(self):
        return load_glyph_splits(
            self.root, self.image_size, self.seed, self.classes, self.examples_per_class
        )

    def prepare(self) -> None:
        self._splits()

    def load(self) -> dict[str, ClassPool]:
        return {
            split: ClassPool.from_grouped(images, [f"{split}-{i}" for i in range(len(images))])
            for split, images in self._splits().items()
        }
