"""Backbone precision and memory format: what each costs on this machine, and what `auto` picks.

    python benchmarks/precision_speed.py [--repeats 7] [--images 320]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/precision_speed.py

Two tables, both in one process so that they share the machine's state:

1. Conv4 forward + backward over `--images` 28 px images (the default meta-batch: 4 tasks of
   5-way 1-shot with 15 queries = 320 images), fp32 and bf16 autocast, NCHW and channels-last.
2. The whole LEO meta-training step (as benchmarks/throughput.py times it) with the default
   config (`model.backbone_autocast=auto`, channels-last) against each explicit choice, measured
   in interleaved rounds so that drift in the machine's speed hits every variant alike.

The second line above makes a CPU with native bf16 behave like one without (oneDNN and ATen
limited to AVX2): bf16 is then emulated, as on many laptops and cloud VMs. Prints JSON on stdout,
progress and each result on stderr as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import machine, median, progress, random_episode, time_per_call

from leo_lightning.models import Conv4
from leo_lightning.models.precision import as_record, autocast
from leo_lightning.training.module import LEOModule

CPU = torch.device("cpu")
BACKBONE_VARIANTS = {  # name: (autocast dtype, channels-last)
    "fp32 NCHW": (None, False),
    "fp32 channels-last": (None, True),
    "bf16 NCHW": (torch.bfloat16, False),
    "bf16 channels-last": (torch.bfloat16, True),
}
STEP_VARIANTS = {  # name: LEOModule settings
    "default (auto, channels-last)": {},
    "fp32 channels-last": {"backbone_autocast": None},
    "bf16 channels-last": {"backbone_autocast": "bf16"},
    "fp32 NCHW": {"backbone_autocast": None, "channels_last": False},
}


def backbone_ms(dtype, channels_last: bool, images: int, repeats: int) -> float:
    torch.manual_seed(0)
    model, x = Conv4(), torch.rand(images, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with autocast(CPU, dtype):
            out = model(x)
        out.float().square().mean().backward()

    return 1000 * time_per_call(step, CPU, warmup=2, repeats=repeats)


class MetaStep:
    """One variant's LEO outer update on a fixed 5-way 1-shot meta-batch of 4 tasks."""

    def __init__(self, settings: dict):
        torch.manual_seed(0)
        self.module = LEOModule(
            backbone={"_target_": "leo_lightning.models.Conv4", "in_channels": 1},
            strategy={"_target_": "leo_lightning.strategies.Amortized"},
            input_shape=[1, 28, 28],
            **settings,
        ).train()
        self.precision = self.module.net.resolve_precision(CPU)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=1e-3)
        self.episode = random_episode(4, 5, 1, 15, 28, CPU)

    def __call__(self) -> float:
        start = time.perf_counter()
        self.module.meta_update(self.episode, self.optimizer, batch_idx=0)  # a run's own update
        return 1000 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=320, help="images per backbone pass")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of LEO steps")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as LEOModule.setup does for a run

    result = {"machine": machine(), "settings": vars(args), "backbone_ms": {}, "step_ms": {}}
    progress(
        f"CPU {result['machine']['cpu_capability']}, native bf16: "
        f"{result['machine']['cpu_native_bf16']}, {result['machine']['torch_threads']} threads"
    )
    for name, (dtype, channels_last) in BACKBONE_VARIANTS.items():
        ms = backbone_ms(dtype, channels_last, args.images, args.repeats)
        result["backbone_ms"][name] = ms
        progress(f"Conv4 fwd+bwd, {args.images} images, {name}: {ms:.1f} ms")

    steps = {name: MetaStep(settings) for name, settings in STEP_VARIANTS.items()}
    result["backbone_precision"] = as_record(steps["default (auto, channels-last)"].precision)
    progress(steps["default (auto, channels-last)"].precision.describe())
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up, untimed
        step(), step()
    for round_ in range(args.rounds):
        for name, step in steps.items():
            times[name] += [step() for _ in range(3)]
        progress(
            f"round {round_ + 1}/{args.rounds}: "
            + ", ".join(f"{name} {median(t):.0f} ms" for name, t in times.items())
        )
    result["step_ms"] = {name: median(t) for name, t in times.items()}
    default = result["step_ms"]["default (auto, channels-last)"]
    explicit = {k: v for k, v in result["step_ms"].items() if not k.startswith("default")}
    fastest = min(explicit, key=explicit.get)
    result["default_vs_fp32_channels_last"] = default / explicit["fp32 channels-last"]
    result["default_vs_fastest_explicit"] = {
        "fastest": fastest,
        "ratio": default / explicit[fastest],
    }
    progress(
        f"default step {default:.1f} ms = {result['default_vs_fp32_channels_last']:.2f} x fp32 "
        f"channels-last, {default / explicit[fastest]:.2f} x the fastest explicit ({fastest})"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
