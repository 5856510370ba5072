"""Meta-training and evaluation throughput of LEO, against the backbone alone.

    python benchmarks/throughput.py [--device cpu|cuda] [--quick] [--no-scaling]
        [--channels-last/--no-channels-last] [--autocast auto|bf16|fp16|none]

Prints one JSON document (machine, threads, allocator setting, settings, resolved backbone
precision, results) and a readable summary; each measurement is reported on stderr as soon as it
is taken. A LEO step is the module's own outer update (`meta_update`): backbone forward over
support and query, encoder, relation network, latent and fine-tuning inner loops (second order),
meta-loss, backward, per-tensor clipping, Adam. The backbone step is the same images through the
same Conv4 with a plain cross-entropy head. The two are measured interleaved, one step of each
per round after both are warm, with the minor page faults of each step and the process's
resident memory; their ratio is what LEO costs on top of training the backbone.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from common import (
    interleaved,
    machine,
    peak_memory_mb,
    progress,
    random_episode,
    reset_peak_memory,
    resident_mb,
    synchronize,
    time_per_call,
)

from leo_lightning.models.precision import as_record
from leo_lightning.training.allocator import configure_allocator
from leo_lightning.training.module import LEOModule

DEFAULT = dict(n=5, k=1, q=15, b=4, size=28, inner=5, finetune=5)


def build(args, size: int, inner: int, finetune: int) -> LEOModule:
    module = LEOModule(
        backbone={"_target_": "leo_lightning.models.Conv4", "in_channels": 1},
        strategy={"_target_": "leo_lightning.strategies.Amortized"},
        input_shape=[1, size, size],
        inner_steps=inner,
        finetune_steps=finetune,
        channels_last=args.channels_last,
        backbone_autocast=None if args.autocast == "none" else args.autocast,
    )
    module = module.to(args.device)
    args.precision = module.net.resolve_precision(args.device)  # `auto` decides here, once
    return module


def leo_step(args, n, k, q, b, size, inner, finetune) -> Callable[[], object]:
    """One outer update of a run: the module's own meta_update on a random episode."""
    module = build(args, size, inner, finetune).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    episode = random_episode(b, n, k, q, size, args.device)
    return lambda: module.meta_update(episode, optimizer, batch_idx=0)


def backbone_step(args, n, k, q, b, size) -> Callable[[], object]:
    """Conv4 forward + backward + Adam over the same images, with a linear cross-entropy head."""
    module = build(args, size, 0, 0).train()
    net = module.net
    head = torch.nn.Linear(net.feature_dim, n).to(args.device)
    params = list(net.backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    episode = random_episode(b, n, k, q, size, args.device)
    images = torch.cat([episode.support_x, episode.query_x], dim=1)
    labels = torch.cat([episode.support_y, episode.query_y], dim=1).flatten()

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = head(net.features(images).flatten(0, 1))
        F.cross_entropy(logits, labels).backward()
        optimizer.step()

    return step


def leo_step_seconds(args, n, k, q, b, size, inner, finetune) -> tuple[float, float]:
    """A LEO step alone (the scaling grid): median seconds after warm-up, and peak memory."""
    step = leo_step(args, n, k, q, b, size, inner, finetune)
    reset_peak_memory(args.device)
    seconds = time_per_call(step, args.device, args.warmup, args.repeats)
    return seconds, peak_memory_mb(args.device)


def eval_episodes_per_second(args, episodes: int, batch: int = 8) -> float:
    module = build(args, DEFAULT["size"], DEFAULT["inner"], DEFAULT["finetune"]).eval()
    episode = random_episode(batch, 5, 1, 15, DEFAULT["size"], args.device)

    def run():
        with torch.enable_grad():
            module(episode)

    for _ in range(args.warmup):
        run()
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(episodes // batch):
        run()
    synchronize(args.device)
    return (episodes // batch) * batch / (time.perf_counter() - start)


def relation_share(args, n, k) -> float:
    """Share of a LEO step spent in the relation network (forward + backward) at N-way K-shot."""
    module = build(args, DEFAULT["size"], DEFAULT["inner"], DEFAULT["finetune"]).train()
    relation = module.strategy.relation
    codes = torch.randn(DEFAULT["b"], n * k, 64, device=args.device, requires_grad=True)
    labels = torch.arange(n, device=args.device).repeat_interleave(k).expand(DEFAULT["b"], -1)

    def step():
        relation(codes, labels, n).sum().backward()

    rel = time_per_call(step, args.device, args.warmup, args.repeats)
    full, _ = leo_step_seconds(
        args,
        n,
        k,
        DEFAULT["q"],
        DEFAULT["b"],
        DEFAULT["size"],
        DEFAULT["inner"],
        DEFAULT["finetune"],
    )
    return rel / full


def scaling_rows(args) -> list[dict]:
    grid = [
        ("n", [5, 10, 20]),
        ("k", [1, 5]),
        ("b", [1, 4, 16]),
        ("inner", [0, 5, 10]),
        ("size", [28, 84, 105]),
    ]
    rows = []
    for key, values in grid:
        for value in values:
            setting = dict(DEFAULT, **{key: value})
            if key == "inner":
                setting["finetune"] = value
            seconds, memory = leo_step_seconds(args, **setting)
            rows.append({"vary": key, **setting, "step_ms": 1000 * seconds, "peak_mb": memory})
            progress(f"scaling {key}={value}: {1000 * seconds:.1f} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--autocast", choices=["auto", "bf16", "fp16", "none"], default="auto")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="few repeats, no scaling grid")
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    if args.quick:
        args.warmup, args.repeats, args.eval_episodes, args.no_scaling = 1, 3, 80, True
    torch.set_flush_denormal(True)  # as LEOModule.setup does for a run

    d = DEFAULT
    allocator = configure_allocator()  # as every entry point does (LEO_ALLOCATOR=default: not)
    results = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "allocator": allocator,
        "settings": {**vars(args), "device": str(args.device), **d},
    }
    steps = {
        "leo": leo_step(args, **d),
        "backbone": backbone_step(args, d["n"], d["k"], d["q"], d["b"], d["size"]),
    }
    results["backbone_precision"] = as_record(args.precision)
    progress(args.precision.describe())
    timed = interleaved(steps, args.device, args.warmup, args.repeats)
    leo, backbone = timed["leo"]["seconds"], timed["backbone"]["seconds"]
    results.update(
        leo_step_ms=1000 * leo,
        leo_tasks_per_s=d["b"] / leo,
        backbone_step_ms=1000 * backbone,
        ratio_leo_to_backbone=leo / backbone,
        leo_minor_faults_per_step=timed["leo"]["minor_faults"],
        backbone_minor_faults_per_step=timed["backbone"]["minor_faults"],
        resident_mb=resident_mb(),
        peak_resident_mb=peak_memory_mb(torch.device("cpu")),
    )
    progress(
        f"interleaved: LEO step {1000 * leo:.1f} ms ({d['b'] / leo:.1f} tasks/s, "
        f"{timed['leo']['minor_faults']} page faults), backbone step {1000 * backbone:.1f} ms "
        f"({timed['backbone']['minor_faults']} page faults), ratio {leo / backbone:.2f}"
    )
    if args.device.type == "cuda":
        results["leo_and_backbone_peak_mb"] = peak_memory_mb(args.device)
    results["eval_episodes_per_s"] = eval_episodes_per_second(args, args.eval_episodes)
    progress(f"eval {results['eval_episodes_per_s']:.1f} episodes/s")
    results["relation_share_20w5s"] = relation_share(args, 20, 5)
    progress(f"relation network {100 * results['relation_share_20w5s']:.1f}% of a 20w5s step")
    if not args.no_scaling:
        results["scaling"] = scaling_rows(args)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
