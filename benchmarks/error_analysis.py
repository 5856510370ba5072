"""Where a checkpoint's test errors are: per alphabet, per rotation, and which classes it confuses.

    python benchmarks/error_analysis.py outputs/<run>/checkpoints/last.ckpt
    python benchmarks/error_analysis.py <ckpt> --episodes 200 data.within_alphabet=true
    python benchmarks/error_analysis.py <ckpt> --batch-norm batch     # transductive BatchNorm

Runs the checkpoint (any strategy; on `--device`) on the fixed test episodes of the data it was
trained with, as `scripts/eval.py` does (`data.*` overrides after the options apply on top of the
stored data config, e.g. `data.n_way=20`), traces every query back to its class, and prints
JSON: the machine, the checkpoint, the BatchNorm mode, the accuracy (mean and 95% CI over
episodes), accuracy per alphabet and per rotation, the errors by kind (other rotation of the same
character, same alphabet, other alphabet) beside the share each kind would have by chance, and
the most confused pairs. See leo_lightning.jobs.error_analysis.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from common import machine, progress

from leo_lightning.api.leo import LEO
from leo_lightning.config.compose import current_directory_as_root
from leo_lightning.jobs.error_analysis import collect_outcomes, summarize
from leo_lightning.jobs.eval import use_batch_norm
from leo_lightning.jobs.user_errors import USER_ERRORS

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", type=Path, help="a checkpoint written by scripts/train.py")
    parser.add_argument(
        "--episodes", type=int, default=None, help="the first N test episodes (default: data's)"
    )
    parser.add_argument("--top", type=int, default=10, help="how many confused pairs to list")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="default: cuda"
    )
    parser.add_argument(
        "--batch-norm", default=None, help="running or batch: as scripts/eval.py batch_norm="
    )
    parser.add_argument("overrides", nargs="*", help="data.* keys applied to the stored data")
    args = parser.parse_intermixed_args()  # the overrides may follow the options
    not_data = [o for o in args.overrides if not o.startswith("data.") or "=" not in o]
    if not_data:
        parser.error(f"only data.<key>=<value> overrides apply here, not {not_data}")
    if args.episodes is not None and args.episodes < 1:
        parser.error(f"--episodes {args.episodes}: must be >= 1")

    try:
        with current_directory_as_root():
            leo = LEO.from_checkpoint(args.ckpt, args.device)
            use_batch_norm(leo.module, args.batch_norm)
            datamodule = leo.datamodule(args.overrides)
    except USER_ERRORS as error:  # a missing or foreign checkpoint, a bad mode, missing data
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    module = leo.module
    episodes = datamodule.fixed_episodes("test", args.episodes or datamodule.test_episodes)
    progress(f"{len(episodes)} test episodes of {args.ckpt} on {args.device}")
    outcomes = collect_outcomes(module, episodes, datamodule.eval_batch_size)
    report = {
        "machine": machine(),
        "ckpt": str(args.ckpt),
        "strategy": type(module.strategy).__name__,
        "batch_norm": module.strategy.batch_norm_mode(module.net),
        "data_overrides": args.overrides,
        "n_way": datamodule.shape.n_way,
        "within_alphabet": datamodule.within_alphabet,
        **summarize(outcomes, datamodule.pools["test"], args.top),
    }
    progress(f"accuracy {100 * report['accuracy']:.2f} +- {100 * report['accuracy_ci95']:.2f} %")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
