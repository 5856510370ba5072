"""Which precision the backbone runs in: `model.backbone_autocast`, with `auto` resolved per run.

bf16 autocast halves the backbone's cost where the hardware computes in bf16 (recent GPUs; CPUs
with AVX512-BF16 or AMX) and multiplies it several times where it does not: on an AVX2-only CPU,
oneDNN emulates bf16 and a Conv4 step is ~7x slower than in fp32 (BENCHMARKS.md). So `auto`
decides for the device the run actually uses:

* CUDA: bf16 where the GPU computes it natively (Ampere and later), else fp32. fp16 is never
  picked: without loss scaling its backbone gradients underflow, and this project's manual,
  second-order meta-update has no GradScaler.
* CPU: fp32 unless the CPU reports native bf16; where it does, a short timed probe of the real
  backbone (about a second, cached per machine, torch version and ISA limits) keeps bf16 only
  if it is clearly faster, since `ONEDNN_MAX_CPU_ISA`, `ATEN_CPU_CAPABILITY` or a hypervisor can
  still make it slow.
* Anything else (MPS, ...): fp32.

The latent inner loop always runs in fp32; only the backbone's forward is autocast.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

AUTO = "auto"
AUTOCAST_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}
CHOICES = (AUTO, *(name for name in AUTOCAST_DTYPES if name))  # and null (None): fp32

# bf16 must beat fp32 by this factor in the probe: near a tie, fp32 is the safer choice.
PROBE_MIN_SPEEDUP = 1.1
PROBE_SECONDS_PER_VARIANT = 0.4  # each variant is timed until this much time is spent
PROBE_PIXELS = 32 * 28 * 28  # images in the probe batch x pixels each: 32 images of 28 px
CACHE_VERSION = 1


@dataclass(frozen=True)
class BackbonePrecision:
    """The resolved autocast dtype name (None: fp32) and why it was chosen."""

    autocast: str | None
    reason: str

    @property
    def name(self) -> str:
        return self.autocast or "fp32"

    @property
    def dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES[self.autocast]

    def describe(self) -> str:
        return f"backbone precision: {self.name} ({self.reason})"


def check_setting(value: str | None) -> None:
    if value is not None and value not in CHOICES:
        raise ValueError(
            f"model.backbone_autocast={value!r}: expected one of {list(CHOICES)} or null (fp32)"
        )


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The autocast context for the backbone, or nothing for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_info() -> dict:
    """What decides CPU precision, also printed by every benchmark: the ISA torch dispatches to,
    whether the CPU itself computes bf16, the ISA limits set in the environment, threads."""
    cpu = torch.cpu
    native = any(
        getattr(cpu, probe, lambda: False)()
        for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return {
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": native,
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def resolve(
    setting: str | None,
    device: torch.device,
    backbone: nn.Module,
    input_shape: tuple[int, ...],
    channels_last: bool,
) -> BackbonePrecision:
    """The precision for `setting` on `device`; explicit settings are kept as they are."""
    check_setting(setting)
    if setting != AUTO:
        return BackbonePrecision(setting, "set by model.backbone_autocast")
    if next(backbone.parameters(), None) is None:  # pre-computed features: model/backbone=flatten
        return BackbonePrecision(None, "the backbone computes nothing to autocast")
    if device.type == "cuda":
        return _resolve_cuda(device)
    if device.type == "cpu":
        return _resolve_cpu(backbone, input_shape, channels_last)
    return BackbonePrecision(None, f"{device.type}: bf16 autocast not relied on there")


def _resolve_cuda(device: torch.device) -> BackbonePrecision:
    name = torch.cuda.get_device_name(device)
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return BackbonePrecision("bf16", f"CUDA {name}, native bf16")
    return BackbonePrecision(None, f"CUDA {name} has no native bf16; fp16 would need loss scaling")


def _resolve_cpu(
    backbone: nn.Module, input_shape: tuple[int, ...], channels_last: bool
) -> BackbonePrecision:
    info = cpu_info()
    if not info["cpu_native_bf16"]:
        return BackbonePrecision(None, f"CPU {info['cpu_capability']}, no native bf16")
    key = _cache_key(info, backbone, input_shape, channels_last)
    cached = _read_cache().get(key)
    if cached is None:
        cached = _probe(backbone, input_shape, channels_last)
        _write_cache(key, cached)
    speedup = cached["fp32_ms"] / cached["bf16_ms"]
    limits = ", ".join(
        f"{k}={info[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if info[k]
    )
    where = f"CPU {info['cpu_capability']}, native bf16" + (f" but {limits}" if limits else "")
    measured = f"probe: bf16 {cached['bf16_ms']:.0f} ms, fp32 {cached['fp32_ms']:.0f} ms"
    if speedup >= PROBE_MIN_SPEEDUP:
        return BackbonePrecision("bf16", f"{where}; {measured}")
    return BackbonePrecision(None, f"{where}; {measured}, bf16 not faster")


def _probe(backbone: nn.Module, input_shape: tuple[int, ...], channels_last: bool) -> dict:
    """Median ms of a forward + backward of a copy of the backbone, in fp32 and in bf16.

    The copy keeps the real backbone's BatchNorm statistics untouched, and the images come from
    a private generator, so probing changes nothing a run depends on (not even the global RNG).
    """
    started = time.perf_counter()
    model = copy.deepcopy(backbone).train().requires_grad_(True)  # a frozen one too
    pixels = max(1, int(torch.tensor(input_shape[1:]).prod()))
    n = max(2, min(32, PROBE_PIXELS // pixels))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, *input_shape, generator=generator)
    if channels_last and images.ndim == 4:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    result = {"images": n}
    fp32_ms = None
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        # bf16 stops early once it is clearly slower: that is the slow, emulated case.
        result[f"{name}_ms"] = _time_backbone(model, images, dtype, give_up_after=fp32_ms)
        fp32_ms = result["fp32_ms"]
    result["probe_seconds"] = time.perf_counter() - started
    log.info("precision probe (%d images): %s", n, result)
    return result


def _time_backbone(
    model: nn.Module, images: torch.Tensor, dtype: torch.dtype | None, give_up_after: float | None
) -> float:
    def step() -> float:
        start = time.perf_counter()
        with autocast(images.device, dtype):
            out = model(images)
        out.float().square().mean().backward()
        return 1000 * (time.perf_counter() - start)

    step()  # warm-up: oneDNN builds its kernels on first use
    times: list[float] = []
    while sum(times) < 1000 * PROBE_SECONDS_PER_VARIANT and len(times) < 7:
        times.append(step())
        if give_up_after is not None and times[-1] > 2 * give_up_after:
            break
    model.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


# -- the probe's cache: one JSON file per user, entries keyed by everything that can change it --


def cache_path() -> Path:
    root = os.environ.get("LEO_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "leo-lightning"
    )
    return Path(root) / "precision_probe.json"


def _cache_key(info: dict, backbone: nn.Module, input_shape, channels_last: bool) -> str:
    described = json.dumps(
        {
            "version": CACHE_VERSION,
            "torch": torch.__version__,
            **info,
            "backbone": repr(backbone),
            "input_shape": list(input_shape),
            "channels_last": channels_last,
        },
        sort_keys=True,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, entry: dict) -> None:
    """Best effort and atomic: an unwritable cache only means probing again next time."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entries = {**_read_cache(), key: entry}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as error:
        log.debug("precision probe cache not written (%s): %s", path, error)


def as_record(precision: BackbonePrecision) -> dict:
    """The form stored in results.json and checkpoints."""
    return {"name": precision.name, **asdict(precision)}
