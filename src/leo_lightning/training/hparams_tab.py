"""TensorBoard's HParams tab: a run's settings against its results, a sweep in one table.

Why not Lightning's `log_hyperparams` as it is: TensorBoard orders the tab's columns by whether
a setting differs between runs, then by name, and shows only the first few; the `differs` flag
is only ever set when TensorBoard builds the table itself, which it does not once a run has
written its own description of the experiment (Lightning writes one). Every column then sorts
by name, and a swept `model.latent_dim` sat behind thirty fixed keys. Here the run writes the
same three records Lightning does, with the keys its sweep varied marked as differing, so they
are the first columns. Values are written as a user writes them (see `shown_as_written`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard.summary import hparams as hparams_summaries


def shown_as_written(params: Mapping[str, Any]) -> dict[str, Any]:
    """HParams values as TensorBoard should show them: integers and booleans as the text a user
    writes (`128`, `true`). TensorBoard's HParams values are numbers, text or booleans, and its
    table prints every number to five significant digits (`128.00`, `5.0000`), so an integer
    logged as a number reads as a float; torch's writer also logs a bool as the number 1.0
    (it tests for int before bool). Floats stay numbers, so their columns sort and filter by
    value."""
    shown = {}
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        shown[key] = value
    return shown


def write_hparams(
    logger: TensorBoardLogger,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    varied: Collection[str],
) -> None:
    """The run's HParams records (experiment, session start and end) and its metrics at step 0,
    the keys in `varied` marked as differing between runs."""
    experiment, start, end = hparams_summaries(shown_as_written(params), dict(metrics))
    record = experiment.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(record.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in varied
    record.content = data.SerializeToString()
    if metrics:
        logger.log_metrics(dict(metrics), step=0)
    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    for summary in (experiment, start, end):
        writer.add_summary(summary)
