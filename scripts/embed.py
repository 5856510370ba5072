"""Write the features of a pretrained backbone: `python scripts/embed.py ckpt_path=...`.

The same command as `leo-embed` (leo_lightning/jobs/embed.py), with outputs and data under
this checkout rather than the current directory.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LEO_PROJECT_ROOT", str(ROOT))

from leo_lightning.cli.embed import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
