"""Compare the jobs of a multirun: `python scripts/compare.py outputs/multiruns/<date>/<time>`.

Writes compare.md and compare.png into that directory and prints the table.
"""

import sys
from pathlib import Path

from leo_lightning.cli.compare import compare

if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python scripts/compare.py <multirun directory>")
    print(compare(Path(sys.argv[1])))
