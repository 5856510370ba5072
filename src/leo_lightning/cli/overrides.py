"""A mistyped key on the command line: one line naming the closest real key, exit code 2,
before `@hydra.main` runs (config/unknown_keys.py says how the key is found)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from leo_lightning.config.unknown_keys import unknown_key_message

UNKNOWN_KEY_EXIT_CODE = 2  # as for the other config mistakes (validation.py)


def exit_on_unknown_keys(config_dir: Path, config_name: str, argv: Sequence[str] | None = None):
    """For a script's `__main__`, before `main()`: print the unknown-key message and exit 2.

    `argv` defaults to sys.argv[1:]; Hydra's own flags are parsed with Hydra's parser, and a
    command line that picks another config (--config-name/-cp/-cd) is left to Hydra. With
    HYDRA_FULL_ERROR=1 nothing is checked here, so Hydra's full error shows."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return
    from hydra._internal.utils import get_args_parser  # the parser @hydra.main itself uses

    args, _ = get_args_parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.config_name or args.config_path or args.config_dir:
        return
    if args.shell_completion:  # `-sc install=bash`: its words are Hydra's, not overrides
        return
    message = missing_extra_message(args.overrides) or unknown_key_message(
        config_dir, config_name, args.overrides
    )
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(UNKNOWN_KEY_EXIT_CODE)


# Options that need an optional extra: the option, the module it needs, the extra
EXTRAS = (("hydra/launcher=slurm", "hydra_plugins.hydra_submitit_launcher", "slurm"),)


def missing_extra_message(overrides: Sequence[str]) -> str | None:
    """An option whose optional dependency is not installed: say which extra to install (Hydra
    would only say that its `submitit_slurm` config cannot be found)."""
    for option, module, extra in EXTRAS:
        if option in overrides and importlib.util.find_spec(module) is None:
            return (
                f"{option} needs the optional '{extra}' dependencies, which are not installed: "
                f"pip install 'leo-lightning[{extra}]' (or pip install -e '.[{extra}]' in a "
                "checkout)"
            )
    return None
