"""The TensorBoard logger of a run: Lightning's, without its `epoch` curve.

Why: Lightning adds the current epoch to every step it logs. Episodes here are an endless
stream, so a meta-training run is one epoch from start to end and the curve is a flat zero; yet
TensorBoard's Time Series tab, which sorts its cards by name, opened on it, above the curves a
run is judged by (`train/`, `val/`, and the Custom Scalars layout). Pretraining counts steps
too (its schedule and checkpoints are by step), so it loses nothing either.
"""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

EPOCH = "epoch"  # the key Lightning adds to every logged step


class RunLogger(TensorBoardLogger):
    """conf/logger/tensorboard.yaml's logger; every other behaviour is TensorBoardLogger's."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        super().log_metrics({k: v for k, v in metrics.items() if k != EPOCH}, step)
