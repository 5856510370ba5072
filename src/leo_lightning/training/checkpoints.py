"""Reading checkpoints safely and saying clearly why one cannot be used."""

from __future__ import annotations

import hashlib
import logging
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from omegaconf import DictConfig, OmegaConf
from torch import nn

from leo_lightning.data.files import atomic_save
from leo_lightning.errors import CheckpointError

CHECKPOINT_KEY = "leo_lightning"

log = logging.getLogger(__name__)


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """Load with weights_only=True (no arbitrary code from pickles) and check it is ours."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(ckpt_path)!r}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same to the user
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} {_what_it_is(path, error)}; {WRITTEN_BY}"
        ) from error
    stored = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not stored or not stored.get("config") or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} is not a leo-lightning checkpoint (no "
            f"'{CHECKPOINT_KEY}' entry); {WRITTEN_BY}"
        )
    check_intact(checkpoint, ckpt_path)
    return checkpoint


def state_digest(state_dict: dict) -> str:
    """SHA-256 over every tensor of a state dict: its name, dtype, shape and bytes, in name
    order. Stored in every checkpoint this project writes, so that damage inside tensor data
    (a flipped bit, a bad copy), which torch.load does not notice, is found on load."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_intact(checkpoint: dict, ckpt_path: str | Path) -> None:
    """The stored digest matches the weights, and every floating-point weight is finite: a
    model with a NaN weight scores chance without a word, and training on from it writes new
    checkpoints full of NaN. A checkpoint from before digests (leo-lightning 0.1.0) is checked
    for finiteness only, with a note."""
    state_dict = checkpoint["state_dict"]
    stored = checkpoint[CHECKPOINT_KEY].get("state_dict_sha256")
    if stored is None:
        log.info("%s holds no digest (written before 0.2): its weights are not verified", ckpt_path)
    elif stored != state_digest(state_dict):
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} is damaged: its weights do not match the digest "
            "stored when it was written (a bad copy or a flipped bit); use another checkpoint "
            "of the run (last.ckpt, best-*.ckpt) or copy it again"
        )
    bad = {
        key: int((~tensor.isfinite()).sum())
        for key, tensor in state_dict.items()
        if tensor.is_floating_point() and not bool(tensor.isfinite().all())
    }
    if bad:
        listed = ", ".join(f"{key} ({count})" for key, count in list(bad.items())[:5])
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} holds non-finite weights (NaN or inf values in "
            f"{len(bad)} tensors: {listed}); it cannot be evaluated or trained on"
        )


WRITTEN_BY = "checkpoints are written by scripts/train.py under <run>/checkpoints/"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def _what_it_is(path: Path, error: Exception) -> str:
    """Why torch.load failed, in the user's terms: what the file is, not what the unpickler
    tripped on (a text file used to give "could not be read as a PyTorch checkpoint: 101").
    torch's own message stays on the chained exception."""
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        return "is an empty file (0 bytes), not a checkpoint"
    if head.startswith(ZIP_MAGIC) and isinstance(error, pickle.UnpicklingError):
        return (
            "is a PyTorch file holding objects other than tensors and plain values, which a "
            "safe load (weights_only=True) does not unpickle: not a checkpoint of this project"
        )
    if head.startswith(ZIP_MAGIC):
        return (
            "is a zip archive but not a readable PyTorch checkpoint: truncated (an unfinished "
            "copy?), corrupt, or another kind of zip"
        )
    if _is_text(head):
        first_line = head.decode("utf-8", errors="replace").splitlines()[0][:60]
        return f"is a text file (it starts with {first_line!r}), not a PyTorch checkpoint"
    return "is not a PyTorch checkpoint (torch.save writes a zip archive; this file is not one)"


def _is_text(head: bytes) -> bool:
    """No NUL and no control bytes other than whitespace (bytes >= 128 may be UTF-8)."""
    return all(byte >= 32 or byte in b"\t\n\r\f" for byte in head)


def check_compatible(checkpoint: dict, module: nn.Module, ckpt_path: str | Path) -> None:
    """Fail before training if the checkpoint's weights do not fit the configured model,
    listing every key that is missing, unexpected or of another shape, and every setting that
    a resume could not honour (INITIAL_VALUES)."""
    saved = checkpoint["state_dict"]
    expected = module.state_dict()
    problems = [f"missing from the checkpoint: {k}" for k in expected if k not in saved]
    problems += [f"not in the configured model: {k}" for k in saved if k not in expected]
    problems += [
        f"{k}: checkpoint {tuple(saved[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    problems += _changed_initial_values(checkpoint, module)
    problems += _changed_step_counts(checkpoint, module)
    problems += _changed_schedule(checkpoint, module)
    problems += _changed_task(checkpoint, module)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} was written for a different model configuration "
            f"({len(problems)} mismatching keys):\n{listed}{more}\n"
            "Use the model and strategy settings the checkpoint was trained with "
            "(see its run's .hydra/config.yaml)."
        )


# Settings that only initialise learned parameters: a resumed run takes those parameters from
# the checkpoint, so a new value would be recorded but never used. (model.lr is applied on
# resume instead: LEOModule.on_load_checkpoint.)
INITIAL_VALUES = ("inner_lr", "finetune_lr")


def _changed_initial_values(checkpoint: dict, module: nn.Module) -> list[str]:
    saved = checkpoint.get("hyper_parameters") or {}
    configured = getattr(module, "hparams", {})
    return [
        f"model.{key}: checkpoint {saved[key]!r}, configured {configured[key]!r} (the initial "
        "value of a learned rate, which a resumed run continues from the checkpoint)"
        for key in INITIAL_VALUES
        if key in saved and key in configured and saved[key] != configured[key]
    ]


def _changed_step_counts(checkpoint: dict, module: nn.Module) -> list[str]:
    """With model.per_step_rates the learned rates are one vector per step, so the step counts
    (and the switch itself) must be the checkpoint's: name the keys, not only the shapes."""
    saved = checkpoint.get("hyper_parameters") or {}
    configured = getattr(module, "hparams", {})
    was, now = saved.get("per_step_rates", False), configured.get("per_step_rates", False)
    if not (was or now):
        return []
    if was != now:
        return [
            f"model.per_step_rates: checkpoint {was!r}, configured {now!r} (the learned rates "
            "are one vector per step with it, one shared vector without)"
        ]
    return [
        f"model.{key}: checkpoint {saved[key]!r}, configured {configured[key]!r} "
        "(model.per_step_rates=true learned one rate vector per step, for the checkpoint's "
        "number of steps)"
        for key in ("inner_steps", "finetune_steps")
        if key in saved and key in configured and saved[key] != configured[key]
    ]


# What shapes the learning-rate schedule, with the value a checkpoint from before the key meant.
# A resumed run continues the checkpoint's scheduler (Lightning restores its state), so these
# cannot change on resume. (model.lr can: the whole curve scales with it, LEOModule.)
SCHEDULE_KEYS = {"lr_schedule": "constant", "warmup_steps": 0}


def _changed_schedule(checkpoint: dict, module: nn.Module) -> list[str]:
    saved = checkpoint.get("hyper_parameters") or {}
    configured = getattr(module, "hparams", {})
    problems = [
        f"model.{key}: checkpoint {saved.get(key, old)!r}, configured {configured[key]!r} (it "
        "shapes the learning-rate schedule, which a resumed run continues)"
        for key, old in SCHEDULE_KEYS.items()
        if key in configured and saved.get(key, old) != configured[key]
    ]
    if configured.get("lr_schedule") == "cosine":
        before = _max_steps(checkpoint.get(CHECKPOINT_KEY, {}).get("config"))
        now = _max_steps(getattr(module, "run_config", None))
        if None not in (before, now) and before != now:
            problems.append(
                f"trainer.max_steps: checkpoint {before}, configured {now} (the length of the "
                "cosine schedule, which a resumed run continues)"
            )
    return problems


# What makes a task what it is, and the run's seed: a resumed run continues the same training, so
# none of these may change (the best checkpoint would be chosen across validations of different
# tasks, and the seed's stream is the checkpoint's).
TASK_KEYS = ("data.n_way", "data.k_shot", "data.n_query", "data.source._target_", "seed")


def _changed_task(checkpoint: dict, module: nn.Module) -> list[str]:
    before = checkpoint.get(CHECKPOINT_KEY, {}).get("config") or {}
    now = getattr(module, "run_config", None) or {}
    problems = []
    for key in TASK_KEYS:
        old, new = _select(before, key), _select(now, key)
        if old is not None and new is not None and old != new:
            problems.append(
                f"{key}: checkpoint {old!r}, configured {new!r} (a resumed run continues the "
                "same task and seed; start a new run for another)"
            )
    return problems


def _select(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _max_steps(config: dict | None) -> int | None:
    return ((config or {}).get("trainer") or {}).get("max_steps")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's own save (lightning.fabric's _atomic_save, 2.6) catches PermissionError and
    drops it: a checkpoint that could not be written counts as saved, and a run trains to its
    end without one. Local files are written with data.files.atomic_save instead (temporary
    file beside the target, fsync, rename), which raises every failure; other file systems
    (s3://, ...) keep Lightning's save."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None or not _is_local_file_protocol(str(path)):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            atomic_save(checkpoint, Path(path))
        except OSError as error:  # disk full, permissions, a folder gone: the user's to fix
            raise CheckpointError(
                f"the checkpoint {path} could not be written ({error.strerror or error}); the "
                "previous one is kept. Free space or fix the folder's permissions, or move the "
                "run (hydra.run.dir), then resume from the last checkpoint saved"
            ) from error


def check_writable(folder: str | Path) -> None:
    """Fail before any work, naming the folder, if no checkpoint can be written to it: else the
    first sign would be a failed save, maybe hours into training."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # removed on close, even by a kill
            pass
    except OSError as error:
        raise CheckpointError(
            f"checkpoints cannot be written to {folder} ({error.strerror or error}); "
            "choose another folder (callbacks.*.dirpath, hydra.run.dir) or fix its permissions"
        ) from error


def check_checkpoint_folders(callbacks: Iterable[object]) -> None:
    """check_writable for the folder of every callback that writes checkpoints (dirpath)."""
    folders = {Path(c.dirpath) for c in callbacks if getattr(c, "dirpath", None)}
    for folder in sorted(folders):
        check_writable(folder)


def plain_config(config: Any) -> Any:
    """A config node as plain, resolved Python containers: what a checkpoint stores, so that it
    loads with weights_only=True."""
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)
    return dict(config) if isinstance(config, Mapping) else config
