"""Classify your own images with a trained checkpoint (few-shot, any number of classes).

    python scripts/predict.py ckpt_path=... support_dir=DIR query_dir=DIR

support_dir holds one subfolder per class (the folder name is the label) with K >= 1 images;
every image in query_dir is classified. Prints a table and writes predictions.csv.

The same command as `leo-predict` (leo_lightning/jobs/predict.py), with outputs under this checkout.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
