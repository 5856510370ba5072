"""Checkpoints are read safely, and one that cannot be used says exactly why."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_module

from leo_lightning.errors import CheckpointError
from leo_lightning.training.checkpoints import check_compatible, read_checkpoint


def save_ours(module, path):
    checkpoint = {"state_dict": module.state_dict(), "leo_lightning": {"config": {"seed": 1}}}
    torch.save(checkpoint, path)
    return path


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.ckpt.*no such file"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_unreadable_binary_file_is_rejected(tmp_path):
    (tmp_path / "x.ckpt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="x.ckpt' is not a PyTorch checkpoint"):
        read_checkpoint(tmp_path / "x.ckpt")


def test_a_text_file_is_named_as_one_with_its_first_line(tmp_path):
    (tmp_path / "notes.ckpt").write_text("hello\nworld\n")
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(tmp_path / "notes.ckpt")
    message = str(error.value)
    assert "notes.ckpt' is a text file (it starts with 'hello')" in message
    assert "written by scripts/train.py under <run>/checkpoints/" in message


def test_an_empty_file_is_named_as_one(tmp_path):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.ckpt' is an empty file \(0 bytes\)"):
        read_checkpoint(tmp_path / "empty.ckpt")


def test_a_truncated_checkpoint_is_named_as_one(tmp_path):
    whole = save_ours(tiny_module(), tmp_path / "whole.ckpt").read_bytes()
    (tmp_path / "half.ckpt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="half.ckpt' is a zip archive .*truncated"):
        read_checkpoint(tmp_path / "half.ckpt")


def test_a_foreign_checkpoint_is_rejected(tmp_path):
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a leo-lightning checkpoint"):
        read_checkpoint(tmp_path / "other.ckpt")


def test_pickled_code_is_not_executed(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"leo_lightning": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=r"safe load \(weights_only=True\)"):
        read_checkpoint(tmp_path / "evil.ckpt")


def test_checkpoint_of_another_model_configuration_lists_the_mismatching_keys(tmp_path):
    path = save_ours(tiny_module(latent_dim=16), tmp_path / "a.ckpt")
    with pytest.raises(CheckpointError, match=r"different model configuration") as error:
        check_compatible(read_checkpoint(path), tiny_module(latent_dim=8), path)
    assert "net.decoder.linear.weight: checkpoint (16, 16), model (16, 8)" in str(error.value)
    assert "net.inner_lr" in str(error.value)


def test_checkpoint_of_another_strategy_lists_missing_and_unexpected_keys(tmp_path):
    path = save_ours(tiny_module(), tmp_path / "a.ckpt")
    universal = tiny_module(strategy={"_target_": "leo_lightning.strategies.Universal"})
    with pytest.raises(CheckpointError) as error:
        check_compatible(read_checkpoint(path), universal, path)
    assert "missing from the checkpoint: strategy.z_meta" in str(error.value)
    assert "not in the configured model: strategy.encoder.linear.weight" in str(error.value)


def test_matching_checkpoint_passes(tmp_path):
    module = tiny_module()
    path = save_ours(module, tmp_path / "a.ckpt")
    check_compatible(read_checkpoint(path), tiny_module(), path)


def test_a_failed_save_raises_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    import fsspec.implementations.local as local
    from helpers import quiet_trainer, random_image_datamodule

    module = tiny_module()
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    before = path.read_bytes()

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local.LocalFileOpener, "write", disk_full)
    with torch.no_grad():
        module.net.inner_lr.add_(1.0)  # a different state, which must not reach the file
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint(path)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["global_step"] == 1


def test_an_unwritable_checkpoint_folder_is_named_before_training(tmp_path, monkeypatch):
    from helpers import unwritable

    from leo_lightning.training.checkpoints import check_writable

    folder = tmp_path / "checkpoints"
    with (
        unwritable(folder, monkeypatch),
        pytest.raises(CheckpointError, match=f"cannot be written to {folder}"),
    ):
        check_writable(folder)


def test_a_checkpoint_folder_below_a_file_is_named(tmp_path):
    from leo_lightning.training.checkpoints import check_writable

    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="cannot be written to .*file/checkpoints"):
        check_writable(tmp_path / "file" / "checkpoints")


def test_a_save_the_folder_refuses_fails_the_run(tmp_path, monkeypatch):
    # Lightning's own save drops a PermissionError: the run went on as if saved.
    from helpers import random_image_datamodule, unwritable
    from test_config import compose_train

    from leo_lightning.jobs.common import build_trainer

    cfg = compose_train(
        f"paths.run_dir={tmp_path}",
        "trainer.max_steps=1",
        "trainer.limit_val_batches=0",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "~callbacks.progress_bar",
        "~logger.tensorboard",
    )
    trainer = build_trainer(cfg)
    trainer.fit(tiny_module(), datamodule=random_image_datamodule())
    folder = tmp_path / "checkpoints"
    with (
        unwritable(folder, monkeypatch),
        pytest.raises(CheckpointError, match="new.ckpt could not"),
    ):
        trainer.save_checkpoint(folder / "new.ckpt")


def test_a_full_disk_during_a_save_is_one_message_and_the_previous_checkpoint_stays(
    tmp_path, monkeypatch
):
    import errno

    from leo_lightning.training.checkpoints import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="last.ckpt could not be written .No space left"):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


@pytest.mark.slow
def test_train_names_an_unwritable_checkpoint_folder_before_preparing_data(tmp_path):
    from helpers import TINY_CONV4, TINY_RUN, run_script

    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "checkpoints"
    proc = run_script(
        "train.py", tmp_path, *TINY_RUN, *TINY_CONV4, f"callbacks.model_checkpoint.dirpath={folder}"
    )
    assert proc.returncode != 0
    assert f"checkpoints cannot be written to {folder}" in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was rendered or downloaded


def test_a_resume_with_another_initial_rate_is_refused_naming_it(tmp_path):
    module = tiny_module()
    path = tmp_path / "a.ckpt"
    torch.save(
        {**torch.load(save_ours(module, path)), "hyper_parameters": dict(module.hparams)}, path
    )
    with pytest.raises(CheckpointError, match=r"model.inner_lr: checkpoint 1.0, configured 0.5"):
        check_compatible(read_checkpoint(path), tiny_module(inner_lr=0.5), path)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A checkpoint as the project writes it (one meta-step of a tiny module)."""
    from helpers import quiet_trainer, random_image_datamodule

    path = tmp_path_factory.mktemp("written") / "model.ckpt"
    module = tiny_module()
    module.run_config = {"seed": 0}
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=random_image_datamodule())
    trainer.save_checkpoint(path)
    return path


def edited(source, target, edit):
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    edit(checkpoint)
    torch.save(checkpoint, target)
    return target


def test_a_written_checkpoint_stores_a_digest_that_its_weights_match(written):
    from leo_lightning.training.checkpoints import state_digest

    checkpoint = read_checkpoint(written)
    assert checkpoint["leo_lightning"]["state_dict_sha256"] == state_digest(
        checkpoint["state_dict"]
    )


def test_damage_inside_the_weights_is_found_by_the_digest(written, tmp_path):
    def flip_one_bit(checkpoint):
        weight = checkpoint["state_dict"]["net.decoder.linear.weight"]
        weight.view(torch.int32)[0, 0] ^= 1  # the lowest mantissa bit of one value

    damaged = edited(written, tmp_path / "damaged.ckpt", flip_one_bit)
    with pytest.raises(CheckpointError, match="damaged.ckpt.*do not match the digest"):
        read_checkpoint(damaged)


def test_a_checkpoint_with_a_non_finite_weight_is_refused_naming_it(written, tmp_path):
    def one_nan(checkpoint):
        checkpoint["state_dict"]["net.decoder.linear.weight"][0, 0] = float("nan")
        checkpoint["leo_lightning"].pop("state_dict_sha256")  # as a checkpoint before digests

    path = edited(written, tmp_path / "nan.ckpt", one_nan)
    with pytest.raises(
        CheckpointError, match=r"non-finite weights.*net.decoder.linear.weight \(1\)"
    ):
        read_checkpoint(path)
    from leo_lightning.training.module import LEOModule

    with pytest.raises(CheckpointError, match="non-finite"):
        LEOModule.load_from_checkpoint(path, map_location="cpu")


def test_a_resume_with_another_task_or_seed_is_refused_listing_each(tmp_path):
    module = tiny_module()
    path = tmp_path / "a.ckpt"
    config = {"seed": 1, "data": {"n_way": 5, "k_shot": 1, "n_query": 15}}
    torch.save({"state_dict": module.state_dict(), "leo_lightning": {"config": config}}, path)
    resumed = tiny_module()
    resumed.run_config = {"seed": 2, "data": {"n_way": 15, "k_shot": 1, "n_query": 15}}
    with pytest.raises(CheckpointError) as error:
        check_compatible(read_checkpoint(path), resumed, path)
    assert "data.n_way: checkpoint 5, configured 15" in str(error.value)
    assert "seed: checkpoint 1, configured 2" in str(error.value)
    assert "k_shot" not in str(error.value)
