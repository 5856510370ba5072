"""LEO's own workload: the meta-training step on frozen 640-d features, as the paper runs it.

    python benchmarks/feature_throughput.py [--experiments miniimagenet_5w1s ...]
        [--repeats 200] [--device cpu|cuda] [--compile [default|reduce-overhead]]

Each experiment (default: the paper's four, miniImageNet and tieredImageNet at 5-way 1- and
5-shot) is composed from its real config, exactly as `leo-train experiment=<name>` would build
the model (12 tasks a step, 5 latent + 5 fine-tuning steps, second order, dropout, sampling),
and run on synthetic unit-norm features of the original files' size that this script makes
itself, so no data is needed. A step is the module's own `meta_update`: forward, meta-loss,
backward, per-tensor clipping and the optimizer, under the subnormal flushing of a run.

Printed beside each: steps/s, ms/step (median over `--repeats` steps after warm-up), the step's
floating-point work (torch's FLOP counter: matrix products, forward and backward) and its floor
on this machine, that work at the rate of one large fp32 matrix product measured here. On CUDA
also max_memory_allocated. One JSON document on stdout (machine, threads, precision, allocator
setting, results); progress on stderr.

`--compile MODE` adds the same model with `model.compile_inner_loops=MODE`: the inner loops'
steps (both loops, given their dropout masks and weight noise) through torch.compile (Inductor;
`reduce-overhead` adds CUDA graphs on a GPU). It reports the first step's time, the compilation
included; eager and compiled steps are then timed interleaved in one process: the trial that
decides whether to compile. The steps hold no autograd call (their gradients are closed-form
tensor ops), so meta-training differentiates the compiled graph once.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from common import interleaved, machine, progress, synchronize
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from leo_lightning.config.compose import compose_config
from leo_lightning.data.episode import Episode
from leo_lightning.training.allocator import configure_allocator
from leo_lightning.training.module import LEOModule, flushing_subnormals

EXPERIMENTS = (
    "miniimagenet_5w1s",
    "miniimagenet_5w5s",
    "tieredimagenet_5w1s",
    "tieredimagenet_5w5s",
)


def build(
    experiment: str, device: torch.device, compile_mode: str | None = None
) -> tuple[LEOModule, dict]:
    """The module `leo-train experiment=<name> [model.compile_inner_loops=<mode>]` trains, and
    its episode shape."""
    overrides = [f"experiment={experiment}"]
    if compile_mode:
        overrides.append(f"model.compile_inner_loops={compile_mode}")
    cfg = compose_config("train", overrides, hydra=False)
    module = instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False).to(device)
    data = cfg.data
    shape = {
        "tasks": data.meta_batch_size,
        "ways": data.n_way,
        "shots": data.k_shot,
        "queries": data.n_query,
        "features": int(cfg.model.input_shape[0]),
    }
    return module.train(), shape


def synthetic_episode(shape: dict, device: torch.device, seed: int = 0) -> Episode:
    """Unit-norm features and per-task permuted labels of one meta-batch."""
    g = torch.Generator().manual_seed(seed)
    b, n, f = shape["tasks"], shape["ways"], shape["features"]

    def features(m: int) -> torch.Tensor:
        return F.normalize(torch.randn(b, m, f, generator=g), dim=-1)

    def labels(r: int) -> torch.Tensor:
        return torch.stack([torch.randperm(n, generator=g).repeat_interleave(r) for _ in range(b)])

    support_y, query_y = labels(shape["shots"]), labels(shape["queries"])
    return Episode(features(support_y.shape[1]), support_y, features(query_y.shape[1]), query_y).to(
        device
    )


def step_flops(module: LEOModule, episode: Episode, optimizer) -> int:
    """Floating-point operations of one step's matrix products, forward and backward."""
    with FlopCounterMode(display=False) as counter, flushing_subnormals():
        module.meta_update(episode, optimizer, batch_idx=0)
    return counter.get_total_flops()


def matmul_rate(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """FLOP/s of one large fp32 matrix product: what this machine's cores can reach."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def prepared_step(experiment: str, args, compile_mode: str | None) -> dict:
    """The experiment's module, optimizer and episode, one step already taken (with a compile
    mode, that step compiles), and the step as a function."""
    torch.manual_seed(0)
    module, shape = build(experiment, args.device, compile_mode)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    episode = synthetic_episode(shape, args.device)

    def step() -> None:
        with flushing_subnormals():
            module.meta_update(episode, optimizer, batch_idx=0)

    start = time.perf_counter()
    step()
    return {
        "module": module,
        "shape": shape,
        "step": step,
        "first_step_s": time.perf_counter() - start,
        "flops": step_flops(module, episode, optimizer),
    }


def measure(experiment: str, args, rate: float) -> list[dict]:
    """One row per variant: eager, and compiled with --compile, measured interleaved."""
    variants = {"eager": prepared_step(experiment, args, None)}
    if args.compile:
        variants[f"compiled ({args.compile})"] = prepared_step(experiment, args, args.compile)
    if args.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(args.device)
    steps = {name: v["step"] for name, v in variants.items()}
    timed = interleaved(steps, args.device, args.warmup, args.repeats)
    rows = []
    for name, variant in variants.items():
        module, ms = variant["module"], 1000 * timed[name]["seconds"]
        row = {
            "experiment": experiment,
            "variant": name,
            **variant["shape"],
            "inner_steps": module.hparams.inner_steps,
            "finetune_steps": module.hparams.finetune_steps,
            "steps_per_s": 1000 / ms,
            "ms_per_step": ms,
            "gflop_per_step": variant["flops"] / 1e9,
            "floor_ms_per_step": 1000 * variant["flops"] / rate,
            "first_step_s": variant["first_step_s"],
            "skipped_steps": int(module.skipped_steps),
        }
        rows.append(row)
        progress(
            f"{experiment}, {name}: {row['steps_per_s']:.1f} steps/s ({ms:.1f} ms; floor "
            f"{row['floor_ms_per_step']:.2f} ms for {row['gflop_per_step']:.3f} GFLOP; first "
            f"step {row['first_step_s']:.1f} s)"
        )
    if args.device.type == "cuda":  # the variants together
        rows[-1]["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(args.device) / 2**20
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument(
        "--compile", nargs="?", const="default", choices=["default", "reduce-overhead"]
    )
    args = parser.parse_args()
    args.device = torch.device(args.device)
    allocator = configure_allocator()  # as every entry point does
    rate = matmul_rate(args.device)
    progress(f"one 1024^3 fp32 matrix product: {rate / 1e9:.0f} GFLOP/s")
    results = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "precision": "fp32 (features: no backbone to autocast)",
        "allocator": allocator,
        "settings": {**vars(args), "device": str(args.device)},
        "matmul_gflop_per_s": rate / 1e9,
        "results": [row for name in args.experiments for row in measure(name, args, rate)],
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
