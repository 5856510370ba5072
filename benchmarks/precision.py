"""Test accuracy of the backbone precisions after the same fixed short meta-training run.

    python benchmarks/precision.py [--steps 300] [--seeds 42 43] [--test-episodes 1000]
        [train.py overrides ...]

For each seed, meta-trains the default config (glyphs, 5-way 1-shot) with scripts/train.py for
`--steps` steps once per variant, alternating the variants:

- bf16: `model.backbone_autocast=bf16 model.channels_last=true` (the default),
- fp32: `model.backbone_autocast=null model.channels_last=false`,

then tests each run's last checkpoint (after exactly `--steps` updates, no selection by
validation) on the same fixed test episodes, each with its own precision, BatchNorm running
statistics. Prints JSON and a table: accuracy ± 95% CI per run, and the bf16 - fp32 difference
with a paired 95% CI (the episodes are the same, so the per-episode differences are paired).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import machine
from hydra.utils import instantiate
from omegaconf import OmegaConf

from leo_lightning.models.precision import as_record
from leo_lightning.training.checkpoints import CHECKPOINT_KEY
from leo_lightning.training.metrics import EpisodeAccuracy, episode_accuracy
from leo_lightning.training.module import LEOModule

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

VARIANTS = {
    "bf16": ["model.backbone_autocast=bf16", "model.channels_last=true"],
    "fp32": ["model.backbone_autocast=null", "model.channels_last=false"],
}


def mean_ci95(values: torch.Tensor) -> tuple[float, float]:
    """Mean and 95% half-width of per-episode values, by the same formula as every reported
    accuracy (EpisodeAccuracy); also used for paired per-episode differences."""
    metric = EpisodeAccuracy()
    metric.update(values)
    mean, ci95, _ = metric.compute()
    return float(mean), float(ci95)


def train(seed: int, variant: str, steps: int, overrides: list[str], output_dir: Path) -> Path:
    """One scripts/train.py run; returns its last checkpoint (after exactly `steps` updates)."""
    run_root = output_dir / f"{variant}-seed{seed}"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *VARIANTS[variant],
        f"seed={seed}",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",  # one cheap validation, at the end
        "data.val_episodes=16",
        "test=false",
        "~callbacks.progress_bar",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    env = dict(os.environ, LEO_OUTPUT_DIR=str(run_root))
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return next(run_root.glob("runs/*/*/checkpoints/last.ckpt"))


@torch.no_grad()
def per_episode_accuracy(ckpt_path: Path, test_episodes: int) -> tuple[torch.Tensor, dict]:
    """Accuracy of each fixed test episode, evaluated as scripts/eval.py does (eval mode, the
    checkpoint's own precision settings and data config)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    config = checkpoint[CHECKPOINT_KEY]["config"]
    data_config = OmegaConf.create(config["data"])
    data_config.test_episodes = test_episodes
    datamodule = instantiate(data_config)
    datamodule.prepare_data()
    datamodule.setup("test")
    module = LEOModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    module.eval()
    torch.set_flush_denormal(True)  # as LEOModule.setup does for a run
    accuracies = []
    for episode in datamodule.test_dataloader():
        with torch.enable_grad():  # the inner loop differentiates even at evaluation
            out = module(episode)
        accuracies.append(episode_accuracy(out.query_logits, episode.query_y))
    settings = {
        "backbone_autocast": module.hparams.backbone_autocast,
        "backbone_precision": as_record(module.net.resolve_precision(torch.device("cpu"))),
        "channels_last": module.hparams.channels_last,
        "global_step": checkpoint["global_step"],
    }
    return torch.cat(accuracies), settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--test-episodes", type=int, default=1000)
    args, overrides = parser.parse_known_args()
    output_dir = Path(tempfile.mkdtemp(prefix="precision-"))
    runs, per_episode = [], {}
    for seed in args.seeds:
        # Alternate the order between seeds, so neither variant always runs first.
        order = list(VARIANTS) if seed % 2 == 0 else list(VARIANTS)[::-1]
        for variant in order:
            start = time.perf_counter()
            ckpt = train(seed, variant, args.steps, overrides, output_dir)
            train_s = time.perf_counter() - start
            start = time.perf_counter()
            acc, settings = per_episode_accuracy(ckpt, args.test_episodes)
            test_s = time.perf_counter() - start
            per_episode[(seed, variant)] = acc
            mean, ci = mean_ci95(acc)
            runs.append(
                {
                    "seed": seed,
                    "variant": variant,
                    **settings,
                    "test_acc": round(mean, 4),
                    "test_acc_ci95": round(ci, 4),
                    "test_episodes": acc.numel(),
                    "train_wall_s": round(train_s, 1),
                    "test_wall_s": round(test_s, 1),
                }
            )
            print(f"  seed {seed} {variant}: {mean:.4f} ± {ci:.4f}", file=sys.stderr)
    differences = []
    for seed in args.seeds:
        diff = per_episode[(seed, "bf16")] - per_episode[(seed, "fp32")]
        mean, ci = mean_ci95(diff)
        differences.append({"seed": seed, "bf16_minus_fp32": round(mean, 4), "ci95": round(ci, 4)})
    pooled = {v: mean_ci95(torch.cat([per_episode[(s, v)] for s in args.seeds])) for v in VARIANTS}
    result = {
        "machine": machine(),
        "steps": args.steps,
        "seeds": args.seeds,
        "overrides": overrides,
        "variants": {v: " ".join(o) for v, o in VARIANTS.items()},
        "runs": runs,
        "paired_differences": differences,
        "mean_over_seeds": {
            v: {"acc": round(m, 4), "ci95": round(c, 4)} for v, (m, c) in pooled.items()
        },
    }
    print(json.dumps(result, indent=2))
    print("\n| seed | variant | test accuracy (95% CI) | train s | test s |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for r in runs:
        print(
            f"| {r['seed']} | {r['variant']} | {100 * r['test_acc']:.2f} ± "
            f"{100 * r['test_acc_ci95']:.2f} % | {r['train_wall_s']} | {r['test_wall_s']} |",
            file=sys.stderr,
        )
    for d in differences:
        print(
            f"seed {d['seed']}: bf16 - fp32 = {100 * d['bf16_minus_fp32']:+.2f} ± "
            f"{100 * d['ci95']:.2f} points (paired, same episodes)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
