"""torch.compile trial: the LEO meta-training step with the backbone compiled, against eager.

    python benchmarks/compile_backbone.py [--device cpu|cuda] [--repeats 15]
        [--autocast auto|bf16|fp16|none] [--channels-last/--no-channels-last] [--mode default|...]

Variants (same weights, same episode, 5-way 1-shot, 15 queries, 4 tasks, 28 px, 5 + 5 steps,
second order):

- eager: no compilation,
- backbone: `module.net.backbone.compile()` (the Conv4 alone; the inner loop never runs it,
  so it needs first-order backward only),
- features: the whole `LEONet.features` path compiled (uint8 -> float, channels-last,
  autocast, Conv4, normalisation),
- nchw-weights (only if named in `--variants`): eager, with the backbone's weights put back in
  NCHW, i.e. the model before `channels_last` converted them (a 1-channel channels-last input
  alone leaves every layer in NCHW).

Compile time is the wall time of the first step (forward + backward compilation) minus the
median eager step, with an empty Inductor cache unless `--warm-cache`. Evaluation (eval mode,
`--eval-batch` tasks per batch as the test loader, inner loops still differentiated) is timed
the same way; its graph compiles separately on its first call. The timed steps alternate
between the variants (one step of each in turn, `--repeats` rounds), so that load from other
processes hits every variant alike; medians are reported, and ratios to eager. The script also
checks that each variant's query logits equal eager's (same weights, same input, evaluation
mode).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

if "--warm-cache" not in sys.argv:  # a fresh Inductor cache: the compile time is a cold start
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")

import torch
from common import machine, median, random_episode, synchronize

from leo_lightning.models.precision import as_record
from leo_lightning.training.module import LEOModule

SETTING = dict(n=5, k=1, q=15, b=4, size=28, inner=5, finetune=5)


def build(args, variant: str) -> LEOModule:
    torch.manual_seed(0)  # the same initial weights for every variant
    module = LEOModule(
        backbone={"_target_": "leo_lightning.models.Conv4", "in_channels": 1},
        strategy={"_target_": "leo_lightning.strategies.Amortized"},
        input_shape=[1, SETTING["size"], SETTING["size"]],
        inner_steps=SETTING["inner"],
        finetune_steps=SETTING["finetune"],
        channels_last=args.channels_last,
        backbone_autocast=None if args.autocast == "none" else args.autocast,
    ).to(args.device)
    if variant == "nchw-weights":  # as before model.channels_last converted the weights
        module.net.backbone.to(memory_format=torch.contiguous_format)
    elif variant == "backbone":
        module.net.backbone.compile(mode=args.mode)
    elif variant == "features":
        module.net.features = torch.compile(module.net.features, mode=args.mode)
    return module


class Runner:
    """One variant's module, optimizer and step; `step()` returns its wall seconds."""

    def __init__(self, args, variant: str, episode, eval_episode):
        self.args, self.variant, self.episode = args, variant, episode
        self.eval_episode = eval_episode
        self.module = build(args, variant).train()
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=1e-3)

    def step(self) -> float:
        synchronize(self.args.device)
        start = time.perf_counter()
        self.module.meta_update(self.episode, self.optimizer, batch_idx=0)  # a run's own update
        synchronize(self.args.device)
        return time.perf_counter() - start

    def eval_seconds(self) -> float:
        """One evaluation batch (the inner loop still differentiates; no outer backward)."""
        self.module.eval()
        synchronize(self.args.device)
        start = time.perf_counter()
        with torch.enable_grad():
            self.module(self.eval_episode)
        synchronize(self.args.device)
        self.module.train()
        return time.perf_counter() - start


@torch.no_grad()
def max_logit_difference(args, variant: str, episode) -> float:
    """Evaluation-mode query logits of a freshly built variant against eager, same weights.

    In evaluation mode nothing is sampled and dropout is off, so the logits are deterministic."""
    eager, other = build(args, "eager").eval(), build(args, variant).eval()
    other.load_state_dict(eager.state_dict())
    with torch.enable_grad():
        a = eager(episode).query_logits
        b = other(episode).query_logits
    return float((a - b).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--autocast", choices=["auto", "bf16", "fp16", "none"], default="auto")
    parser.add_argument("--mode", default="default", help="torch.compile mode")
    parser.add_argument("--variants", nargs="+", default=["eager", "backbone", "features"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--eval-batch", type=int, default=8, help="tasks per evaluation batch")
    parser.add_argument("--warm-cache", action="store_true", help="keep the Inductor cache")
    args = parser.parse_args()
    args.device = torch.device(args.device)
    torch.set_flush_denormal(True)  # as LEOModule.setup does for a run
    s = SETTING
    episode = random_episode(s["b"], s["n"], s["k"], s["q"], s["size"], args.device)
    eval_episode = random_episode(
        args.eval_batch, s["n"], s["k"], s["q"], s["size"], args.device, seed=1
    )

    runners, first_step, errors = {}, {}, {}
    for variant in args.variants:
        try:
            runner = Runner(args, variant, episode, eval_episode)
            first_step[variant] = runner.step()  # compiles forward and backward
            for _ in range(args.warmup - 1):
                runner.step()
            runners[variant] = runner
        except Exception as error:  # noqa: BLE001 - a failed compile is a result to report
            errors[variant] = f"{type(error).__name__}: {error}"
            traceback.print_exc(file=sys.stderr)

    times = {v: [] for v in runners}
    eval_times = {v: [] for v in runners}
    for _ in range(args.repeats):  # interleaved: one step of each variant per round
        for variant, runner in runners.items():
            times[variant].append(runner.step())
    for variant, runner in runners.items():  # the eval graph compiles on its first call
        first_step[f"{variant}/eval"] = runner.eval_seconds()
    for _ in range(args.repeats):
        for variant, runner in runners.items():
            eval_times[variant].append(runner.eval_seconds())

    eager_ms = 1000 * median(times["eager"]) if "eager" in times else None
    eager_eval_ms = 1000 * median(eval_times["eager"]) if "eager" in eval_times else None
    results = {}
    for variant in runners:
        step_ms = 1000 * median(times[variant])
        eval_ms = 1000 * median(eval_times[variant])
        row = {
            "step_ms": round(step_ms, 1),
            "step_ms_min": round(1000 * min(times[variant]), 1),
            "step_ms_max": round(1000 * max(times[variant]), 1),
            "first_step_s": round(first_step[variant], 2),
            "eval_batch_ms": round(eval_ms, 1),
            "eval_episodes_per_s": round(1000 * args.eval_batch / eval_ms, 1),
            "first_eval_s": round(first_step[f"{variant}/eval"], 2),
        }
        if eager_ms:
            row["speedup_vs_eager"] = round(eager_ms / step_ms, 3)
            row["eval_speedup_vs_eager"] = round(eager_eval_ms / eval_ms, 3)
            row["compile_s"] = round(first_step[variant] - eager_ms / 1000, 2)
            row["eval_compile_s"] = round(first_step[f"{variant}/eval"] - eager_eval_ms / 1000, 2)
        if variant != "eager":
            row["max_abs_logit_diff_vs_eager"] = max_logit_difference(args, variant, episode)
        results[variant] = row

    payload = {
        "machine": machine(),
        "backbone_precision": as_record(build(args, "eager").net.resolve_precision(args.device)),
        "settings": {**vars(args), "device": str(args.device), **s},
        "results": results,
        "errors": errors,
    }
    print(json.dumps(payload, indent=2))
    print(
        "\n| variant | train step ms | vs eager | compile s (train) | eval batch ms | vs eager "
        "| compile s (eval) |",
        file=sys.stderr,
    )
    print("|---|---|---|---|---|---|---|", file=sys.stderr)
    for variant, row in results.items():
        print(
            f"| {variant} | {row['step_ms']} | {row.get('speedup_vs_eager', '-')}x | "
            f"{row.get('compile_s', '-')} | {row['eval_batch_ms']} | "
            f"{row.get('eval_speedup_vs_eager', '-')}x | {row.get('eval_compile_s', '-')} |",
            file=sys.stderr,
        )
    for variant, error in errors.items():
        print(f"{variant}: failed: {error}", file=sys.stderr)


if __name__ == "__main__":
    main()
