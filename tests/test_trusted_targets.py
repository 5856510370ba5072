"""A checkpoint runs no code: what it asks to build must be a class the configs name."""

from __future__ import annotations

import pytest
import torch
from helpers import quiet_trainer, random_image_datamodule, run_script, tiny_module

import leo_lightning as ll
from leo_lightning.errors import CheckpointError
from leo_lightning.training.module import LEOModule
from leo_lightning.training.trusted_targets import allowed_targets, check_stored_targets

PRECIOUS = "a file the checkpoint must not touch\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint of a tiny module (one meta-step), with a data config stored."""
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    module = tiny_module()
    module.run_config = {"data": {"_target_": "leo_lightning.data.EpisodicDataModule"}}
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    trainer.save_checkpoint(path)
    return path


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text(PRECIOUS)
    return path


def poisoned(checkpoint, tmp_path, edit):
    """A copy of `checkpoint` that still passes the safe load, edited by `edit(dict)`."""
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    edit(stored)
    path = tmp_path / "poisoned.ckpt"
    torch.save(stored, path)
    return path


def opens(victim) -> dict:
    """A config node that, built by hydra's instantiate, empties `victim`."""
    return {"_target_": "builtins.open", "_args_": [str(victim), "w"]}


@pytest.mark.parametrize("role", ["backbone", "strategy"])
def test_a_stored_model_part_naming_a_foreign_callable_is_refused_before_it_runs(
    checkpoint, tmp_path, victim, role
):
    path = poisoned(
        checkpoint, tmp_path, lambda c: c["hyper_parameters"].update({role: opens(victim)})
    )
    with pytest.raises(CheckpointError, match=r"builtins\.open.*refusing"):
        LEOModule.load_from_checkpoint(path, map_location="cpu")
    assert victim.read_text() == PRECIOUS


def test_a_stored_data_config_naming_a_foreign_callable_is_refused_by_the_api(
    checkpoint, tmp_path, victim
):
    path = poisoned(
        checkpoint, tmp_path, lambda c: c["leo_lightning"].update(config={"data": opens(victim)})
    )
    leo = ll.LEO.from_checkpoint(path)  # the model itself is the project's own
    with pytest.raises(CheckpointError, match=r"data\._target_='builtins\.open'"):
        leo.datamodule()
    assert victim.read_text() == PRECIOUS


def test_a_nested_foreign_target_is_found(tmp_path, victim):
    data = {"_target_": "leo_lightning.data.EpisodicDataModule", "source": opens(victim)}
    with pytest.raises(CheckpointError, match=r"data\.source\._target_='builtins\.open'"):
        check_stored_targets(data, "data", "x.ckpt")


def test_an_interpolation_in_a_stored_config_is_refused():
    """`oc.decode` could build a node with a target of its own after the check."""
    backbone = {
        "_target_": "leo_lightning.models.Conv4",
        "channels": "${oc.decode:'{_target_: builtins.open}'}",
    }
    with pytest.raises(CheckpointError, match=r"backbone\.channels=.*interpolation"):
        check_stored_targets(backbone, "backbone", "x.ckpt")


def test_a_target_of_another_role_is_refused():
    """A data class is a project class, but not a backbone."""
    with pytest.raises(CheckpointError, match="not a backbone class"):
        check_stored_targets({"_target_": "leo_lightning.data.EpisodicDataModule"}, "backbone", "x")


def test_every_shipped_strategy_and_backbone_is_allowed():
    strategies = allowed_targets("strategy")
    for name in (
        "Amortized",
        "AmortizedPure",
        "Universal",
        "PerTask",
        "MAML",
        "MetaSGD",
        "ProtoNet",
    ):
        assert f"leo_lightning.strategies.{name}" in strategies
    assert "leo_lightning.models.Conv4" in allowed_targets("backbone")
    assert "leo_lightning.data.omniglot.OmniglotSource" in allowed_targets("data")
    assert "leo_lightning.data.augment.RandomAffine" in allowed_targets("data")


def test_a_strategy_named_in_the_users_config_folder_is_allowed(tmp_path):
    (tmp_path / "strategy").mkdir()
    (tmp_path / "strategy" / "mine.yaml").write_text(
        "# @package _global_\nstrategy:\n  _target_: my_package.MyStrategy\n"
    )
    check_stored_targets({"_target_": "my_package.MyStrategy"}, "strategy", "x", [tmp_path])
    with pytest.raises(CheckpointError, match="my_package.MyStrategy"):
        check_stored_targets({"_target_": "my_package.MyStrategy"}, "strategy", "x")


def test_the_users_own_checkpoint_loads(checkpoint):
    module = LEOModule.load_from_checkpoint(checkpoint, map_location="cpu")
    assert type(module.strategy).__name__ == "Amortized"


@pytest.mark.slow
def test_eval_refuses_a_poisoned_data_config_with_exit_2_and_touches_nothing(
    checkpoint, tmp_path, victim
):
    path = poisoned(
        checkpoint, tmp_path, lambda c: c["leo_lightning"].update(config={"data": opens(victim)})
    )
    proc = run_script("eval.py", tmp_path, f"ckpt_path={path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "builtins.open" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_text() == PRECIOUS
