"""Packaging: the configs ship inside the package and `pip install .` gives the commands
leo-train, leo-eval, leo-predict, leo-compare, leo-pretrain and leo-embed, which work from any
directory (the wheel itself, installed, runs the README's commands in test_readme_commands.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from leo_lightning.config.compose import CONFIG_DIR

COMMANDS = {
    "leo-train": "leo_lightning.cli.train:main",
    "leo-eval": "leo_lightning.cli.eval:main",
    "leo-predict": "leo_lightning.cli.predict:main",
    "leo-compare": "leo_lightning.cli.compare:main",
    "leo-pretrain": "leo_lightning.cli.pretrain:main",
    "leo-embed": "leo_lightning.cli.embed:main",
}


def config_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml"))


def test_the_package_reads_the_checkouts_conf_folder():
    """One copy of the configs: the package's conf/ is the checkout's conf/."""
    assert CONFIG_DIR.resolve() == (ROOT / "conf").resolve()


def command(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed command `name` as its console-script wrapper runs it, started in `cwd`
    with no LEO_* variable set (the tests' precision cache excepted)."""
    module = COMMANDS[name].split(":")[0]
    code = f"import sys; sys.argv[0] = {name!r}; from {module} import main; sys.exit(main())"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEO_", "HYDRA_"))}
    env["LEO_CACHE_DIR"] = os.environ["LEO_CACHE_DIR"]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_leo_train_takes_a_config_dir_of_ones_own(tmp_path):
    mine = tmp_path / "my_configs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\nmodel:\n  latent_dim: 4\n")
    args = ["--config-dir", str(tmp_path / "my_configs"), "experiment=mine", "--cfg", "job"]
    proc = command("leo-train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "latent_dim: 4" in proc.stdout
    assert not (tmp_path / "outputs").exists()  # printing the config runs nothing
