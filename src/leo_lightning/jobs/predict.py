"""Few-shot classification of a user's own images with a trained checkpoint.

The support folder holds one subfolder per class (its name is the label) with K >= 1 images;
every image of the query folder is classified. Size and channels come from the checkpoint.
Every dataset here is stored as bright ink on a dark background, so by default a grayscale
image whose mean is above mid-grey (dark strokes on light paper) is inverted; `invert=true` or
`invert=false` forces it. The decoder is per class, so any number of classes works.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from leo_lightning.data.episode import Episode
from leo_lightning.data.user_images import images_in, load_images, support_classes
from leo_lightning.errors import CheckpointError, DataError
from leo_lightning.jobs.safe_text import spreadsheet_cell, without_control_characters
from leo_lightning.training.checkpoints import read_checkpoint
from leo_lightning.training.module import LEOModule

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> list[dict]:
    read_checkpoint(cfg.ckpt_path)  # a clear error for a missing or foreign file
    module = LEOModule.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=True)
    module.eval()
    shape = module.hparams.input_shape
    if len(shape) != 3:
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path!r} was trained on pre-computed features {shape}, not on "
            "images; predict.py classifies images"
        )
    channels, size = shape[0], shape[1]
    classes = support_classes(Path(cfg.support_dir))
    query_dir = Path(cfg.query_dir)
    if not query_dir.is_dir():
        raise DataError(f"query_dir={str(query_dir)!r} is not a directory")
    queries = images_in(query_dir, "query_dir")

    names = list(classes)
    support_paths = [p for name in names for p in classes[name]]
    support_y = torch.tensor([i for i, name in enumerate(names) for _ in classes[name]])
    episode = Episode(
        support_x=load_images(support_paths, channels, size, cfg.invert)[None],
        support_y=support_y[None],
        query_x=load_images(queries, channels, size, cfg.invert)[None],
        query_y=torch.zeros(1, len(queries), dtype=torch.long),
    )
    with torch.enable_grad():
        probabilities = module(episode).query_logits[0].softmax(dim=-1)  # [n_query, N]

    rows = []
    for path, probs in zip(queries, probabilities.tolist()):
        row = {"file": path.name, "predicted": names[int(np.argmax(probs))]}
        row.update({f"p({name})": round(p, 4) for name, p in zip(names, probs)})
        rows.append(row)
    output = Path(HydraConfig.get().runtime.output_dir) / "predictions.csv"
    write_predictions(output, rows)
    shots = sorted({len(v) for v in classes.values()})
    print(f"{len(names)}-way, {'/'.join(map(str, shots))}-shot support; {len(rows)} queries")
    shown = [
        (without_control_characters(r["file"]), without_control_characters(r["predicted"]))
        for r in rows
    ]
    width = max(len(file) for file, _ in shown)
    for row, (file, predicted) in zip(rows, shown):
        best = row[f"p({row['predicted']})"]
        print(f"{file:<{width}}  {predicted}  ({best:.2f})")
    print(f"written to {output}")
    return rows


def write_predictions(output: Path, rows: list[dict]) -> None:
    """The rows as CSV, each name (class folder, query file) a safe cell: no formula that a
    spreadsheet would run, no control character (safe_text). Written by position, so two
    names that read alike once made safe still get a column each."""
    with output.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([spreadsheet_cell(key) for key in rows[0]])
        for row in rows:
            writer.writerow(
                [spreadsheet_cell(v) if isinstance(v, str) else v for v in row.values()]
            )
