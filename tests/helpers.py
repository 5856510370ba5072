"""Small builders shared by the tests."""

from __future__ import annotations

import errno
import os
import subprocess
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

from leo_lightning.data import ClassPool, EpisodicDataModule
from leo_lightning.data.episode import Episode
from leo_lightning.training.module import LEOModule

CONV4 = {"_target_": "leo_lightning.models.Conv4", "in_channels": 1, "channels": 8}
AMORTIZED = {"_target_": "leo_lightning.strategies.Amortized"}


def tiny_module(**overrides) -> LEOModule:
    """A LEO module small enough for unit tests (8-channel Conv4 on 28 px, d = 8)."""
    kwargs = dict(
        backbone=CONV4,
        strategy=AMORTIZED,
        input_shape=[1, 28, 28],
        latent_dim=8,
        inner_steps=2,
        finetune_steps=2,
        channels_last=False,
        backbone_autocast=None,
    )
    kwargs.update(overrides)
    return LEOModule(**kwargs)


def random_episode(b: int = 2, n: int = 5, k: int = 1, q: int = 3, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    images = lambda m: torch.randint(0, 256, (b, m, 1, 28, 28), generator=g, dtype=torch.uint8)  # noqa: E731
    labels = lambda r: torch.randperm(n, generator=g).repeat_interleave(r).repeat(b, 1)  # noqa: E731
    return Episode(images(n * k), labels(k), images(n * q), labels(q))


class PoolSource:
    """A data source over in-memory pools, standing in for a real dataset."""

    def __init__(self, pools):
        self.pools = pools

    def prepare(self):
        pass

    def load(self):
        return self.pools


def random_image_datamodule(**overrides) -> EpisodicDataModule:
    """5-way 1-shot episodes of random 28 px images: for mechanics, not for learning."""
    g = torch.Generator().manual_seed(0)

    def pool(n_classes):
        images = torch.randint(0, 256, (n_classes, 6, 1, 28, 28), generator=g, dtype=torch.uint8)
        return ClassPool.from_grouped(images)

    kwargs = dict(
        image_size=28,
        channels=1,
        n_way=5,
        k_shot=1,
        n_query=3,
        meta_batch_size=2,
        eval_batch_size=4,
        val_episodes=4,
        test_episodes=4,
    )
    kwargs.update(overrides)
    return EpisodicDataModule(
        PoolSource({"train": pool(10), "val": pool(5), "test": pool(5)}), **kwargs
    )


# Overrides that make scripts/train.py a run of seconds: few classes, steps and episodes, no
# progress bar. TINY_CONV4 shrinks the default backbone and latent code to match.
TINY_RUN = [
    "debug=fast",
    "data.source.examples_per_class=6",
    "data.n_query=3",
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
]
TINY_CONV4 = ["model.latent_dim=8", "model.backbone.channels=8"]


def run_script(script: str, tmp_path, *args: str, timeout: int = 300, **env_overrides):
    """Run scripts/<script> in a subprocess with outputs and the data cache under tmp_path.

    The script runs in a session of its own, and a timeout kills the whole session: a DDP run's
    further ranks are its children, and killing the script alone left them running (and
    holding a core) after the test had failed."""
    import sys

    from conftest import ROOT

    env = dict(os.environ, LEO_OUTPUT_DIR=str(tmp_path / "outputs"))
    env.setdefault("LEO_DATA_DIR", str(tmp_path / "data"))
    env.update(env_overrides)
    return run_command([sys.executable, str(ROOT / "scripts" / script), *args], env, timeout)


def run_command(command: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output=True, text=True), but a timeout kills the command's whole
    session, its children included."""
    import signal

    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def train_checkpoint(tmp_path, name: str, *overrides: str):
    """Train with scripts/train.py into tmp_path/name; the loaded last.ckpt of that run."""
    proc = run_script("train.py", tmp_path / name, *overrides, LEO_DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / name / "outputs").glob("runs/*/*/checkpoints/last.ckpt")
    return path


def quiet_trainer(**overrides):
    """An in-process CPU Trainer without logger, checkpoints (other than the checkpoint
    callbacks given), progress bar or sanity check."""
    import lightning as L
    from lightning.pytorch.callbacks import Checkpoint

    callbacks = overrides.get("callbacks") or []
    kwargs = dict(
        logger=False,
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
        check_val_every_n_epoch=None,
        accelerator="cpu",
    )
    kwargs.update(overrides)
    return L.Trainer(**kwargs)


@contextmanager
def unwritable(folder, monkeypatch):
    """`folder` refuses new files, as a read-only or foreign folder does. Root (as in CI
    containers) ignores permission bits, so there the folder is made immutable with chattr +i;
    where that is not allowed either, the Python calls that create or rename files in it fail
    with EACCES instead."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o500)
        undo = partial(folder.chmod, 0o700)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        undo = partial(subprocess.run, ["chattr", "-i", str(folder)], check=True)
    else:
        _refuse_new_files(folder, monkeypatch)
        undo = monkeypatch.undo
    try:
        yield folder
    finally:
        undo()


def _refuse_new_files(folder, monkeypatch):
    import builtins

    def inside(path):
        return isinstance(path, (str, os.PathLike)) and folder in (Path(path), Path(path).parent)

    def refusing(original, writes=lambda *a: True):
        def call(path, *args, **kwargs):
            if inside(path) and writes(*args):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return original(path, *args, **kwargs)

        return call

    def rename(original):
        def call(source, target, *args, **kwargs):
            if inside(target):
                raise PermissionError(errno.EACCES, "Permission denied", str(target))
            return original(source, target, *args, **kwargs)

        return call

    monkeypatch.setattr(
        builtins, "open", refusing(builtins.open, lambda mode="r", *a: mode[0] in "wxa")
    )
    monkeypatch.setattr(
        os, "open", refusing(os.open, lambda flags, *a: flags & (os.O_WRONLY | os.O_RDWR))
    )
    monkeypatch.setattr(os, "rename", rename(os.rename))
    monkeypatch.setattr(os, "replace", rename(os.replace))


def hparams_record(run_dir, tag: str):
    """The HParams plugin's record `_hparams_/<tag>` (experiment or session_start_info) of the
    run's TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    for events in (run_dir / "tensorboard").rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        try:
            content = accumulator.PluginTagToContent("hparams").get(f"_hparams_/{tag}")
        except KeyError:  # an event file without HParams
            continue
        if content:
            return getattr(HParamsPluginData.FromString(content), tag)
    raise AssertionError(f"no _hparams_/{tag} in {run_dir / 'tensorboard'}")
