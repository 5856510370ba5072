"""Pretrain a backbone by classification: `python scripts/pretrain.py [overrides]`.

The same command as `leo-pretrain` (leo_lightning/jobs/pretrain.py), with outputs and data under
this checkout rather than the current directory.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.pretrain import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
