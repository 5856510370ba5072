"""Composing a config outside a Hydra app, and where a run's files go.

Every entry point (the `leo-*` commands, scripts/*.py, `leo_lightning.train`) composes from the
package's configs, `locations.CONFIG_DIR`.

Outputs and data go under `paths.root_dir` (conf/paths/default.yaml), read from
LEO_PROJECT_ROOT: scripts/*.py set it to their checkout; the installed commands and the Python
API default it to the current directory.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, OmegaConf

from leo_lightning.config.schemas import register_configs
from leo_lightning.locations import CONFIG_DIR

PROJECT_ROOT_ENV = "LEO_PROJECT_ROOT"

# A user's own config folders: one, several, or none.
ConfigDirs = str | Path | Sequence[str | Path] | None


def use_current_directory_as_root() -> None:
    """For a command's process: outputs and data under the directory it was started from,
    unless LEO_PROJECT_ROOT says otherwise."""
    os.environ.setdefault(PROJECT_ROOT_ENV, os.getcwd())


@contextlib.contextmanager
def current_directory_as_root() -> Iterator[None]:
    """The same for a call from Python, for that call only: a notebook that changes directory
    between two runs gets each run under the directory it was in."""
    if PROJECT_ROOT_ENV in os.environ:
        yield
        return
    os.environ[PROJECT_ROOT_ENV] = os.getcwd()
    try:
        yield
    finally:
        os.environ.pop(PROJECT_ROOT_ENV, None)


def config_folders(config_dir: ConfigDirs) -> list[Path]:
    """`config_dir` (one folder, several, or None) as a list of paths."""
    if config_dir is None:
        return []
    folders = [config_dir] if isinstance(config_dir, str | Path) else list(config_dir)
    return [Path(folder) for folder in folders]


def search_path_override(config_dir: ConfigDirs) -> list[str]:
    """`hydra.searchpath` adding the user's config folders, as `--config-dir` does on the
    command line: their files add options to any group (e.g. experiment/mine.yaml gives
    `experiment=mine`). A missing folder is an error here, not a silent no-op in Hydra."""
    paths = []
    for folder in config_folders(config_dir):
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"config_dir={str(folder)!r} is not a directory")
        paths.append(f"file://{path}")
    return [f"hydra.searchpath=[{','.join(paths)}]"] if paths else []


def compose_config(
    config_name: str,
    overrides: Sequence[str] = (),
    config_dir: ConfigDirs = None,
    hydra: bool = True,
) -> DictConfig:
    """The config `config_name` ("train", "eval", "predict") with `overrides`, composed as the
    command `leo-<config_name>` would (same schemas and defaults; Hydra names the job after
    the config, so its log is <config_name>.log). `hydra=True` keeps the `hydra` node, which a
    run needs."""
    if GlobalHydra.instance().is_initialized():
        raise RuntimeError(
            "leo_lightning composes its own config, so it cannot do so inside a Hydra app "
            "(@hydra.main, or an open hydra.initialize block); there, use the config you have"
        )
    register_configs()
    setup_globals()  # Hydra's ${now:...} resolver, used by the run folder names
    overrides = [*overrides, *search_path_override(config_dir)]
    with initialize_config_dir(str(CONFIG_DIR), job_name=config_name, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=hydra)


def quoted(key: str, value: str | Path) -> str:
    """`key='value'`: an override whose value may hold characters Hydra's grammar reads as
    syntax (spaces, commas, `=`, brackets), such as a file path."""
    # Hydra keeps backslashes as they are, except a run of them before a quote or at the end
    # of the value, which stands for half as many.
    doubled = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, str(value))
    return f"{key}='" + doubled.replace("'", "\\'") + "'"


def with_data_overrides(stored_data: dict, overrides: Sequence[str]) -> DictConfig:
    """A checkpoint's stored data config with command-line style `data.<key>=<value>` overrides
    applied on top (e.g. `data.n_way=20`, `data.within_alphabet=true`); `data.` is optional."""
    dotlist = [o.lstrip("+").removeprefix("data.") for o in overrides]
    return OmegaConf.merge(OmegaConf.create(stored_data), OmegaConf.from_dotlist(dotlist))
