"""Few-shot classification of a user's own images with a trained checkpoint.

The support folder holds one subfolder per class (its name is the label) with K >= 1 images;
every image of the query folder is classified: the images in it, and those in class subfolders
(`query/<class>/<image>`, the support folder's layout), whose true class is then known: the CSV
gets a `true` column and the command prints the accuracy over them. Size and channels come from
the checkpoint. Every dataset here is stored as bright ink on a dark background, so by default a
grayscale image whose mean is above mid-grey (dark strokes on light paper) is inverted;
`invert=true` or `invert=false` forces it. The decoder is per class, so any number of classes works.
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
from leo_lightning.data.user_images import load_images, query_images, support_classes
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
    labelled = query_images(query_dir)
    names = list(classes)
    unknown = sorted({label for _, label in labelled if label is not None} - set(names))
    if unknown:
        raise DataError(
            f"query_dir={str(query_dir)!r}: class subfolder(s) {', '.join(map(repr, unknown))} "
            f"are not classes of support_dir (its classes: {', '.join(names)})"
        )
    queries = [path for path, _ in labelled]

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
    has_labels = any(label is not None for _, label in labelled)
    for (path, label), probs in zip(labelled, probabilities.tolist()):
        row = {"file": str(path.relative_to(query_dir)), "predicted": names[int(np.argmax(probs))]}
        if has_labels:
            row["true"] = label or ""
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
    scored = [row for row in rows if row.get("true")]
    if scored:
        correct = sum(row["predicted"] == row["true"] for row in scored)
        print(f"accuracy on the {len(scored)} labelled queries: {correct / len(scored):.4f}")
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
