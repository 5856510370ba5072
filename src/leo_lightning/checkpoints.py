"""Reading checkpoints safely and saying clearly why one cannot be used."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CHECKPOINT_KEY = "leo_lightning"


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, not this project's, or built for another model."""


def read_checkpoint(ckpt_path: str | Path) -> dict:
    """Load with weights_only=True (no arbitrary code from pickles) and check it is ours."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(ckpt_path)!r}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same to the user
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} could not be read as a PyTorch checkpoint: {error}"
        ) from error
    stored = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not stored or not stored.get("config") or "state_dict" not in checkpoint:
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} is not a leo-lightning checkpoint (no "
            f"'{CHECKPOINT_KEY}' entry); checkpoints are written by scripts/train.py under "
            "<run>/checkpoints/"
        )
    return checkpoint


def check_compatible(checkpoint: dict, module: nn.Module, ckpt_path: str | Path) -> None:
    """Fail before training if the checkpoint's weights do not fit the configured model,
    listing every key that is missing, unexpected or of another shape."""
    saved = checkpoint["state_dict"]
    expected = module.state_dict()
    problems = [f"missing from the checkpoint: {k}" for k in expected if k not in saved]
    problems += [f"not in the configured model: {k}" for k in saved if k not in expected]
    problems += [
        f"{k}: checkpoint {tuple(saved[k].shape)}, model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CheckpointError(
            f"ckpt_path={str(ckpt_path)!r} was written for a different model configuration "
            f"({len(problems)} mismatching keys):\n{listed}{more}\n"
            "Use the model and strategy settings the checkpoint was trained with "
            "(see its run's .hydra/config.yaml)."
        )
