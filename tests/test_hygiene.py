"""What a user of a package expects to find: its licence, its version where results are, type
information, and `--version` answering for this package."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from helpers import run_script

import leo_lightning


def pyproject(key: str) -> str:
    """A `key = "value"` (or `key = { text = "value" }`) of pyproject.toml (Python 3.10 has no
    tomllib)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(rf'^{key} = (?:{{ text = )?"([^"]+)"', text, re.MULTILINE).group(1)


def test_the_version_is_the_one_pyproject_declares():
    declared = pyproject("version")
    assert leo_lightning.__version__ == declared


def test_the_licence_pyproject_names_is_in_the_repository():
    declared = pyproject("license")
    assert (ROOT / "LICENSE").read_text().startswith(f"{declared} License")
    assert (ROOT / "src" / "leo_lightning" / "py.typed").exists()
    assert f"## {leo_lightning.__version__}" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("script", ["train.py", "eval.py", "predict.py"])
def test_version_flag_prints_this_package_s_version(tmp_path, script):
    proc = run_script(script, tmp_path, "--version", timeout=120)
    assert (
        proc.returncode == 0 and proc.stdout.strip() == f"leo-lightning {leo_lightning.__version__}"
    )
