"""`leo-train --version` (and eval, predict) prints this package's version; Hydra would print
its own."""

from __future__ import annotations

import sys

from leo_lightning.version import __version__


def exit_on_version_flag(argv: list[str] | None = None) -> None:
    if "--version" in (sys.argv[1:] if argv is None else argv):
        print(f"leo-lightning {__version__}")
        sys.exit(0)
