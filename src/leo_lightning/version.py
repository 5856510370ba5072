"""The package's version, read from its installed metadata (pyproject.toml is the one place it is
written); a checkout used without installing says so."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leo-lightning")
except PackageNotFoundError:  # PYTHONPATH=src without an install
    __version__ = "0+unknown"
