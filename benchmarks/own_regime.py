"""LEO in its own regime against the simple baselines, on identical features and episodes.

    python benchmarks/own_regime.py omniglot_minimal --seed 0
    python benchmarks/own_regime.py omniglot_minimal --seed 0 --skip-pretrain   # reuse stage 1
    python benchmarks/own_regime.py glyphs --seed 0

One pretraining per seed (experiment=<table>_pretrain), one embedding of its best checkpoint,
then every row of every setting of the table (Omniglot minimal: 5-way, 20-way, 20-way within
one alphabet; glyphs: 5-way, 20-way; all 1-shot) scored by leo-train on the same 1000 fixed
test episodes:

- nearest_centroid: SimpleShot (CL2N: the training mean subtracted, L2-normalised); nothing
  meta-learned
- logistic_regression: RFS (L2-normalised features, C = 1); nothing meta-learned
- protonet_features: ProtoNets with an identity backbone, which has nothing to learn: it is
  nearest centroid on the raw features (strategy.normalize=false)
- meta_sgd_features: Meta-SGD on the features (the LEO paper's own ablation): a zero head
  adapted by SGD steps with meta-learned per-feature rates
- leo_features: LEO (amortized, latent + fine-tuning steps) meta-trained on the frozen features
- leo_finetuned: LEO meta-trained end to end from the pretrained backbone (the table's end-to-end
  recipe cut to 6.5 minutes, with model.backbone_init and the backbone at a tenth of the rate)
- leo_end_to_end: the table's end-to-end recipe from scratch, no pretraining (the default row of
  the glyph table; Omniglot's 10-minute recipe has its own 3-seed rows in BENCHMARKS.md)

The ablation rows (`--rows` names them; not run by default) take LEO on the features apart, to
say which part of it costs or buys what against nearest centroid: LEO on the centred features
nearest centroid uses (leo_features_centred), without its latent steps (leo_no_latent_steps) or
its fine-tuning steps (leo_no_finetune_steps), without the encoder (universal_features: one
learned start), and without any step (amortized_pure_features); and leo_finetuned with each
latent step bounded (leo_finetuned_bounded, model.latent_step_bound=1.0).

`--views K` embeds each image as the mean feature of K views (the plain image and K - 1 affine
distortions: the original's "multiview"), for every split alike. Each row's compute counts the
pretraining and the embedding once per seed, and is reported with its own. Prints JSON on
stdout: the machine, the commands, and one object per row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import machine, progress

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "experiment=frozen_features"
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
    "leo_end_to_end": [],
}
ABLATIONS = {  # LEO on the features, one part changed (run only when --rows names them)
    "leo_features_centred": [FEATURES, "data.source.centre=true"],
    "leo_no_latent_steps": [FEATURES, "model.inner_steps=0"],
    "leo_no_finetune_steps": [FEATURES, "model.finetune_steps=0"],
    "universal_features": [FEATURES, "strategy=universal"],
    "amortized_pure_features": [FEATURES, "strategy=amortized_pure"],
    "leo_finetuned_bounded": [*ROWS["leo_finetuned"], "model.latent_step_bound=1.0"],
}
NOTHING_LEARNED = ("nearest_centroid", "logistic_regression", "protonet_features")


@dataclass(frozen=True)
class Table:
    """One data source's table: its pretraining, its settings and rows, its end-to-end recipe
    per way count (the rows on images start from it)."""

    pretrain: str
    settings: tuple[str, ...]
    rows: tuple[str, ...]
    end_to_end: dict[int, list[str]]
    split: str


TABLES = {
    "omniglot_minimal": Table(
        pretrain="experiment=omniglot_minimal_pretrain",
        settings=tuple(SETTINGS),
        rows=tuple(row for row in ROWS if row != "leo_end_to_end"),
        # the 10-minute recipes (10,500 steps at 5 ways, 5,000 at 20 with 2 tasks a step); the
        # fine-tuned rows cut their steps to fit 6.5 minutes
        end_to_end={5: ["experiment=omniglot_minimal"], 20: ["experiment=omniglot_minimal_20w"]},
        split="test (Korean + Early_Aramaic, 1000 fixed episodes)",
    ),
    "glyphs": Table(
        pretrain="experiment=glyphs_pretrain",
        settings=("5w1s", "20w1s"),
        rows=tuple(ROWS),
        # the fair bench's glyph recipes (constant rate), given the 10 minutes a row may take
        end_to_end={
            n_way: [
                f"experiment=glyphs_{n_way}w1s",
                "trainer.max_steps=-1",
                "trainer.max_time=00:00:10:00",
                "trainer.val_check_interval=500",
            ]
            for n_way in (5, 20)
        },
        split="test (300 held-out glyph classes, 1000 fixed episodes)",
    ),
}
FINETUNE_STEPS = {5: "trainer.max_steps=6000", 20: "trainer.max_steps=3200"}  # ~6.5 minutes
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


def built_on(row: str) -> str:
    """What a row starts from, which decides its data and the stage-1 compute it counts: the
    embedded features, the pretrained backbone (fine-tuned on the images), or nothing."""
    if row == "leo_end_to_end":
        return "scratch"
    return "pretrained" if row.startswith("leo_finetuned") else "features"


def merged(*overrides: str) -> list[str]:
    """The overrides with one value per key, the last given (Hydra refuses a key set twice)."""
    by_key = {override.split("=", 1)[0]: override for override in overrides}
    return list(by_key.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", default=None, help="comma-separated; default: the table's")
    parser.add_argument(
        "--rows",
        default=None,
        help=f"comma-separated; default: the table's; ablations: {','.join(ABLATIONS)}",
    )
    parser.add_argument("--views", type=int, default=1, help="leo-embed's views (multiview: K)")
    parser.add_argument(
        "--pretrain-override",
        action="append",
        default=[],
        help="a leo-pretrain override on top of the table's (repeatable)",
    )
    parser.add_argument("--skip-pretrain", action="store_true", help="reuse --out's stage 1")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/bench/own_regime")
    args = parser.parse_args()
    table = TABLES[args.table]
    settings = args.settings.split(",") if args.settings else list(table.settings)
    rows_run = args.rows.split(",") if args.rows else list(table.rows)
    unknown = set(rows_run) - set(ROWS) - set(ABLATIONS)
    unknown |= {s for s in settings if s not in SETTINGS or s not in table.settings}
    if unknown:  # before the pretraining, not after it
        parser.error(f"unknown --rows/--settings for {args.table}: {', '.join(sorted(unknown))}")
    views = f"_views{args.views}" if args.views > 1 else ""
    default_out = ROOT / "outputs" / "bench" / "own_regime" / f"{args.table}_seed{args.seed}"
    if args.table == "omniglot_minimal":  # where its published rows were run
        default_out = default_out.with_name(f"seed{args.seed}")
    out = (args.out or default_out).resolve()
    seed = f"seed={args.seed}"

    pretrain_dir, embed_dir = out / "pretrain", out / f"embed{views}"
    record = out / "stage1.json"  # stage 1's seconds: the pretraining, each embedding
    if not args.skip_pretrain:
        pretrain_seconds, _ = run(
            "pretrain.py",
            table.pretrain,
            *args.pretrain_override,
            seed,
            f"hydra.run.dir={pretrain_dir}",
            "overwrite=true",
            *QUIET,
        )
        record.write_text(json.dumps({"pretrain_seconds": pretrain_seconds}))
    stage1 = json.loads(record.read_text())
    embed_key = f"embed_seconds{views}"
    if not args.skip_pretrain or embed_key not in stage1:  # a reused pretraining, new views
        best = results(pretrain_dir)["best_ckpt"]
        stage1[embed_key], _ = run(
            "embed.py",
            f"ckpt_path={best}",
            f"views={args.views}",
            f"hydra.run.dir={embed_dir}",
            "overwrite=true",
        )
        record.write_text(json.dumps(stage1))
    pretrained = results(pretrain_dir)

    rows = []
    for setting in settings:
        n_way = int(SETTINGS[setting][0].split("=")[1])
        for row in rows_run:
            folder = out / f"{setting}{views}" / row
            chosen = ROWS[row] if row in ROWS else ABLATIONS[row]  # leo_end_to_end: []
            overrides = [*chosen, *SETTINGS[setting], seed, f"hydra.run.dir={folder}"]
            start = built_on(row)
            if start == "pretrained":
                overrides = [*table.end_to_end[n_way], FINETUNE_STEPS[n_way], *overrides]
                overrides.append(f"model.backbone_init={pretrained['best_ckpt']}")
            elif start == "scratch":
                overrides = [*table.end_to_end[n_way], *overrides]
            else:
                overrides.append(f"data.source.root={embed_dir / 'embeddings'}")
            overrides = merged(*overrides)
            if "data.within_alphabet=true" in overrides and row not in NOTHING_LEARNED:
                # The validation alphabet has 17 characters, too few for a 20-way episode within
                # it: a meta-learned row is its 20-way run's best checkpoint tested within one
                # alphabet (run 20w1s first, in this call or an earlier one)
                trained = results(out / f"20w1s{views}" / row)
                overrides = [f"ckpt_path={trained['best_ckpt']}", "data.within_alphabet=true"]
                overrides.append(f"hydra.run.dir={folder}")
                seconds, error = run("eval.py", *overrides, "overwrite=true", check=False)
                seconds += trained["wall_seconds"]  # its compute: the 20-way training's and this
            else:
                seconds, error = run("train.py", *overrides, "overwrite=true", *QUIET, check=False)
            if error:  # e.g. training diverged: a result too, reported as such
                failed = {"setting": setting, "row": row, "failed": error}
                rows.append({**failed, "overrides": overrides})
                progress(json.dumps(rows[-1]))
                continue
            r = results(folder)
            stage1_seconds = {
                "features": stage1["pretrain_seconds"] + stage1[embed_key],
                "pretrained": stage1["pretrain_seconds"],  # not the embedding
                "scratch": 0.0,
            }[start]
            rows.append(
                {
                    "setting": setting,
                    "row": row,
                    "test_acc": r["test/acc"],
                    "test_acc_ci95": r["test/acc_ci95"],
                    "best_val_acc": r.get("best_val_acc"),
                    "meta_train_steps": r.get("meta_train_steps"),  # eval.py: its training's
                    "skipped_updates": r.get("skipped_updates"),
                    "row_seconds": seconds,
                    "total_seconds": seconds + stage1_seconds,
                    "batch_norm": r["batch_norm"],
                    "overrides": overrides,
                }
            )
            progress(json.dumps(rows[-1]))
    report = {
        "machine": machine(),
        "table": args.table,
        "seed": args.seed,
        "views": args.views,
        "pretrain": {
            "best_val_acc": pretrained["best_val_acc"],
            "steps": pretrained["steps"],
            "pretrain_seconds": stage1["pretrain_seconds"],
            "embed_seconds": stage1[embed_key],
        },
        "split": table.split,
        "rows": rows,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
