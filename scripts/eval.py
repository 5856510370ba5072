"""Test a checkpoint: `python scripts/eval.py ckpt_path=<run>/checkpoints/last.ckpt`.

The same command as `leo-eval` (leo_lightning/jobs/eval.py), with outputs under this checkout.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.eval import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
