"""Meta-train LEO: `python scripts/train.py [group=option ...] [key=value ...]`.

The same command as `leo-train` (leo_lightning/jobs/train.py), with outputs and data under this
checkout rather than the current directory.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
