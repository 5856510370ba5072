"""Where the package's own files are.

One copy of the Hydra configs: the checkout's top-level `conf/`. The package reaches it through
the symlink `src/leo_lightning/conf -> ../../conf`, which setuptools follows when it builds a
wheel (`[tool.setuptools.package-data]` in pyproject.toml), so an installed package carries real
files in `leo_lightning/conf/` and a checkout (editable install or PYTHONPATH=src) reads `conf/`
itself.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"
