"""LEO in its own regime against the simple baselines, on identical features and episodes.

    python benchmarks/own_regime.py omniglot_minimal --seed 0
    python benchmarks/own_regime.py omniglot_minimal --seed 0 --skip-pretrain   # reuse stage 1

One pretraining per seed (experiment=omniglot_minimal_pretrain), one embedding of its best
checkpoint, then every row of every setting (5-way, 20-way, 20-way within one alphabet, all
1-shot) scored by leo-train on the same 1000 fixed test episodes:

- nearest_centroid: SimpleShot (CL2N: the training mean subtracted, L2-normalised); nothing
  meta-learned
- logistic_regression: RFS (L2-normalised features, C = 1); nothing meta-learned
- protonet_features: ProtoNets with an identity backbone, which has nothing to learn: it is
  nearest centroid on the raw features (strategy.normalize=false)
- meta_sgd_features: Meta-SGD on the features (the LEO paper's own ablation): a zero head
  adapted by SGD steps with meta-learned per-feature rates
- leo_features: LEO (amortized, latent + fine-tuning steps) meta-trained on the frozen features
- leo_finetuned: LEO meta-trained end to end from the pretrained backbone (the 10-minute recipe,
  experiment=omniglot_minimal or _20w, cut to 6.5 minutes, with model.backbone_init and the
  backbone at a tenth of the rate)

The ablation rows (`--rows` names them; not run by default) take LEO on the features apart, to
say which part of it costs or buys what against nearest centroid: LEO on the centred features
nearest centroid uses (leo_features_centred), without its latent steps (leo_no_latent_steps) or
its fine-tuning steps (leo_no_finetune_steps), without the encoder (universal_features: one
learned start), and without any step (amortized_pure_features); and leo_finetuned with each
latent step bounded (leo_finetuned_bounded, model.latent_step_bound=1.0).

Each row's compute counts the pretraining and the embedding once per seed, and is reported with
its own. Prints JSON on stdout: the machine, the commands, and one object per row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import machine, progress

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "experiment=omniglot_minimal_features"
SETTINGS = {  # name: overrides of the episodes
    "5w1s": ["data.n_way=5"],
    "20w1s": ["data.n_way=20"],
    "20w1s_within_alphabet": ["data.n_way=20", "data.within_alphabet=true"],
}
ROWS = {  # name: the overrides of its leo-train run (after the data's)
    "nearest_centroid": [FEATURES, "strategy=nearest_centroid", "data.source.centre=true"],
    "logistic_regression": [FEATURES, "strategy=logistic_regression"],
    "protonet_features": [FEATURES, "strategy=nearest_centroid", "strategy.normalize=false"],
    "meta_sgd_features": [FEATURES, "strategy=meta_sgd"],
    "leo_features": [FEATURES],
    "leo_finetuned": ["model.backbone_lr_scale=0.1", "trainer.max_time=00:00:06:30"],
}
ABLATIONS = {  # LEO on the features, one part changed (run only when --rows names them)
    "leo_features_centred": [FEATURES, "data.source.centre=true"],
    "leo_no_latent_steps": [FEATURES, "model.inner_steps=0"],
    "leo_no_finetune_steps": [FEATURES, "model.finetune_steps=0"],
    "universal_features": [FEATURES, "strategy=universal"],
    "amortized_pure_features": [FEATURES, "strategy=amortized_pure"],
    "leo_finetuned_bounded": [*ROWS["leo_finetuned"], "model.latent_step_bound=1.0"],
}
# The end-to-end recipe each setting fine-tunes with, its steps cut to fit 6.5 minutes (the
# 10-minute recipes take 10,500 steps at 5 ways and 5,000 at 20 with 2 tasks a step)
FINETUNE_RECIPE = {
    5: ["experiment=omniglot_minimal", "trainer.max_steps=6000"],
    20: ["experiment=omniglot_minimal_20w", "trainer.max_steps=3200"],
}
QUIET = ["trainer.enable_progress_bar=false", "~callbacks.progress_bar"]


def run(script: str, *overrides: str, check: bool = True) -> tuple[float, str | None]:
    """Run scripts/<script> with the overrides: its wall-clock seconds, and its error message
    if it failed (only with check=False; else a failure stops the benchmark)."""
    command = [sys.executable, str(ROOT / "scripts" / script), *overrides]
    progress(" ".join(command[1:]))
    started = time.perf_counter()
    # stdout: the JSON alone; the command's own output goes to stderr
    proc = subprocess.run(command, cwd=ROOT, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode and check:
        raise SystemExit(f"{script} failed (exit {proc.returncode})")
    error = proc.stderr.strip().splitlines()[-1] if proc.returncode else None
    return time.perf_counter() - started, error


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=["omniglot_minimal"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated; ablations: {','.join(ABLATIONS)}"
    )
    parser.add_argument("--skip-pretrain", action="store_true", help="reuse --out's stage 1")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/bench/own_regime")
    args = parser.parse_args()
    unknown = set(args.rows.split(",")) - set(ROWS) - set(ABLATIONS)
    unknown |= set(args.settings.split(",")) - set(SETTINGS)
    if unknown:  # before the pretraining, not after it
        parser.error(f"unknown --rows/--settings: {', '.join(sorted(unknown))}")
    out = (args.out or ROOT / "outputs" / "bench" / "own_regime" / f"seed{args.seed}").resolve()
    seed = f"seed={args.seed}"

    pretrain_dir, embed_dir = out / "pretrain", out / "embed"
    if not args.skip_pretrain:
        pretrain_seconds, _ = run(
            "pretrain.py",
            "experiment=omniglot_minimal_pretrain",
            seed,
            f"hydra.run.dir={pretrain_dir}",
            "overwrite=true",
            *QUIET,
        )
        best = results(pretrain_dir)["best_ckpt"]
        embed_seconds, _ = run(
            "embed.py", f"ckpt_path={best}", f"hydra.run.dir={embed_dir}", "overwrite=true"
        )
        (out / "stage1.json").write_text(
            json.dumps({"pretrain_seconds": pretrain_seconds, "embed_seconds": embed_seconds})
        )
    stage1 = json.loads((out / "stage1.json").read_text())
    pretrained = results(pretrain_dir)

    rows = []
    for setting in args.settings.split(","):
        for row in args.rows.split(","):
            folder = out / setting / row
            chosen = ROWS.get(row) or ABLATIONS[row]
            overrides = [*chosen, *SETTINGS[setting], seed, f"hydra.run.dir={folder}"]
            if row.startswith("leo_finetuned"):
                n_way = int(SETTINGS[setting][0].split("=")[1])
                overrides = [*FINETUNE_RECIPE[n_way], *overrides]
                overrides.append(f"model.backbone_init={pretrained['best_ckpt']}")
            else:
                overrides.append(f"data.source.root={embed_dir / 'embeddings'}")
            seconds, error = run("train.py", *overrides, "overwrite=true", *QUIET, check=False)
            if error:  # e.g. training diverged: a result too, reported as such
                failed = {"setting": setting, "row": row, "failed": error}
                rows.append({**failed, "overrides": overrides})
                progress(json.dumps(rows[-1]))
                continue
            r = results(folder)
            rows.append(
                {
                    "setting": setting,
                    "row": row,
                    "test_acc": r["test/acc"],
                    "test_acc_ci95": r["test/acc_ci95"],
                    "best_val_acc": r.get("best_val_acc"),
                    "meta_train_steps": r["meta_train_steps"],
                    "row_seconds": seconds,
                    "total_seconds": seconds + stage1["pretrain_seconds"] + stage1["embed_seconds"],
                    "batch_norm": r["batch_norm"],
                    "overrides": overrides,
                }
            )
            progress(json.dumps(rows[-1]))
    report = {
        "machine": machine(),
        "seed": args.seed,
        "pretrain": {
            "best_val_acc": pretrained["best_val_acc"],
            "steps": pretrained["steps"],
            **stage1,
        },
        "split": "test (Korean + Early_Aramaic, 1000 fixed episodes)",
        "rows": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
