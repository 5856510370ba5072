"""`leo-compare`, and scripts/compare.py in a checkout: the command around jobs/compare.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leo_lightning.jobs.compare import CompareError, compare


def main(argv: list[str] | None = None) -> int:
    """scripts/compare.py: print the table, or one line saying which file or key is wrong."""
    parser = argparse.ArgumentParser(
        prog=Path(sys.argv[0]).name or "leo-compare",  # leo-compare, or compare.py in a checkout
        description="Compare the jobs of one or more multiruns in one table: writes compare.md "
        "and compare.png into the first directory and prints the table.",
    )
    parser.add_argument(
        "multirun_dirs", nargs="+", type=Path, help="e.g. outputs/multiruns/<date>/<time>"
    )
    args = parser.parse_args(argv)
    try:
        print(compare(*args.multirun_dirs))
        first = args.multirun_dirs[0]
        print(f"written to {first / 'compare.md'} and {first / 'compare.png'}")
    except (FileNotFoundError, CompareError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
