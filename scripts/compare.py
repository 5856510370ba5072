"""Compare the jobs of a multirun: `python scripts/compare.py outputs/multiruns/<date>/<time>`.

Writes compare.md and compare.png into that directory and prints the table (the same command
as `leo-compare`, leo_lightning/jobs/compare.py).
"""

import sys

from leo_lightning.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
