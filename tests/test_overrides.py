"""A mistyped key on the command line names the closest real key, not Hydra's `+key` hint."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import run_script

from leo_lightning.config.schemas import register_configs
from leo_lightning.config.unknown_keys import unknown_key_message

register_configs()


def message(*overrides: str, config: str = "train") -> str | None:
    return unknown_key_message(ROOT / "conf", config, overrides)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("model.latnet_dim", "model.latent_dim"),
        ("sed", "seed"),
        ("trainer.max_stesp", "trainer.max_steps"),
        ("modle.latent_dim", "model.latent_dim"),
        ("data.source.train_clases", "data.source.train_classes"),
    ],
)
def test_a_mistyped_key_names_the_closest_real_key(typed, meant):
    assert message(f"{typed}=3") == (
        f"{typed}: no such key; did you mean {meant}? (`--cfg job` prints every key)"
    )


def test_the_keys_come_from_the_chosen_options():
    assert "did you mean strategy.lr?" in message("strategy=per_task", "strategy.lrr=1")
    assert message("data=folder", "data.source.train_classes=3") == (
        "data.source.train_classes: no such key (`--cfg job` prints every key)"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.latent_dim=3"],  # fine
        ["model.latent_dim=abc"],  # a wrong type: Hydra's message names the key already
        ["strategy=amortised"],  # an unknown option: Hydra lists the options
        ["-m", "model.latnet_dim=3,4"],  # a sweep: composed per job by the sweeper
    ],
)
def test_other_command_lines_are_left_to_hydra(overrides):
    assert message(*[o for o in overrides if o != "-m"]) is None


@pytest.mark.parametrize("command", ["train", "predict", "pretrain", "embed"])
def test_hydras_shell_completion_is_not_read_as_overrides(command):
    """`eval "$(leo-train -sc install=bash)"`: Hydra's own completion, not a key named install."""
    code = (
        f"import sys; sys.argv = ['leo-{command}', '-sc', 'install=bash']; "
        f"from leo_lightning.cli.{command} import main; main()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "complete" in proc.stdout and "no such key" not in proc.stderr


def test_the_slurm_launcher_without_its_extra_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    from leo_lightning.cli import overrides

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if "submitit" in name else real(name, *a),
    )
    with pytest.raises(SystemExit) as exit_:
        overrides.exit_on_unknown_keys(ROOT / "conf", "train", ["-m", "hydra/launcher=slurm"])
    assert exit_.value.code == 2
    assert "pip install 'leo-lightning[slurm]'" in capsys.readouterr().err


def test_the_slurm_launcher_with_its_extra_passes_the_check():
    from leo_lightning.cli.overrides import missing_extra_message

    assert missing_extra_message(["hydra/launcher=slurm"]) is None  # installed in dev


def test_the_predict_config_is_checked_too():
    assert "did you mean support_dir?" in message("suport_dir=x", config="predict")


@pytest.mark.slow
def test_train_script_names_the_real_key_and_no_plus_hint(tmp_path):
    proc = run_script("train.py", tmp_path, "model.latnet_dim=3")
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: model.latnet_dim: no such key; did you mean model.latent_dim? "
        "(`--cfg job` prints every key)\n"
    )
    assert not (tmp_path / "outputs").exists()
