"""What train and eval share: building the trainer from config and writing results."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from leo_lightning.training.checkpoints import AtomicCheckpointIO

log = logging.getLogger(__name__)


def instantiate_each(group: DictConfig | None) -> list[Any]:
    """Callbacks and loggers are named entries of a mapping; build each one that is not null."""
    return [instantiate(entry) for entry in (group or {}).values() if entry is not None]


def build_trainer(
    cfg: DictConfig, extra_callbacks: list | None = None, **overrides: Any
) -> L.Trainer:
    """The configured Trainer; `overrides` replace keys of cfg.trainer."""
    return instantiate(
        cfg.trainer,
        callbacks=instantiate_each(cfg.get("callbacks")) + list(extra_callbacks or []),
        logger=instantiate_each(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO()],  # a checkpoint that cannot be written fails the run
        **overrides,
    )


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Atomic: a reader never sees half a file, and an old file survives a failed write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def test_metrics(results: list[Mapping[str, float]]) -> dict[str, float]:
    """trainer.test returns one dict per dataloader; we have one."""
    return {k: float(v) for k, v in (results[0] if results else {}).items()}


def format_accuracy(metrics: Mapping[str, float]) -> str:
    return (
        f"test/acc = {metrics['test/acc']:.4f} ± {metrics['test/acc_ci95']:.4f} "
        f"({int(metrics['test/episodes'])} episodes)"
    )
