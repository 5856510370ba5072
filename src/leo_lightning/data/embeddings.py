"""Features written by `leo-embed`, read back as a data source (`data=embeddings`).

The format (one file per split, `<root>/<split>.pt`, read with `torch.load(weights_only=True)`,
so a file runs no code) is a dict:

- `format`: "leo-lightning-embeddings", `format_version`: 1
- `split`: "train", "val" or "test"
- `features`: float32 [M, F], the backbone's raw output for each example (a mean over views
  when `views` > 1)
- `labels`: int64 [M], the class of each example, an index into `class_names`
- `class_names`: list of M' strings; `class_groups`: the group (Omniglot: alphabet) of each
  class, or None
- `provenance`: where the features come from, the same in the three files of one `leo-embed`
  run: `checkpoint` (its path) and `checkpoint_sha256` (of the file), `state_dict_sha256`,
  `backbone` (its config), `input_shape`, `data` (the config of the data embedded), `views`,
  `version` (of leo-lightning)

`EmbeddingSource` refuses three files that do not come from one run (a val file of another
backbone would be scored against a train file of this one), and, with `checkpoint_sha256` set,
files of any other checkpoint than the one named: a run on features records which pretraining
they trace back to, and can pin it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.files import atomic_save
from leo_lightning.errors import DataError, DataNotFoundError

log = logging.getLogger(__name__)

FORMAT = "leo-lightning-embeddings"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
# What must agree between the three files of one run (the rest, e.g. the path, may differ).
SAME_RUN_KEYS = ("checkpoint_sha256", "state_dict_sha256", "backbone", "data", "views")


def split_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}.pt"


def write_split(
    root: str | Path,
    split: str,
    features: Tensor,
    labels: Tensor,
    class_names: Sequence[str],
    class_groups: Sequence[str] | None,
    provenance: Mapping[str, Any],
) -> Path:
    """Write one split's file atomically (a reader never sees half of it)."""
    path = split_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "split": split,
        "features": features.detach().float().cpu().contiguous(),
        "labels": labels.detach().long().cpu().contiguous(),
        "class_names": list(class_names),
        "class_groups": None if class_groups is None else list(class_groups),
        "provenance": dict(provenance),
    }
    atomic_save(payload, path)
    return path


def read_split(path: str | Path) -> dict[str, Any]:
    """One split's file, checked to be in this format; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(
            f"data.source.root: no embeddings file {path}; write one with leo-embed "
            "ckpt_path=<a leo-pretrain checkpoint> (it writes <run>/embeddings/<split>.pt)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read means the same to the user
        raise DataError(f"{path}: not a readable embeddings file ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{path}: not an embeddings file written by leo-embed (no '{FORMAT}')")
    if payload.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: embeddings format version {payload.get('format_version')}; this "
            f"leo-lightning reads version {FORMAT_VERSION}: write it again with leo-embed"
        )
    features, labels = payload["features"], payload["labels"]
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise DataError(
            f"{path}: features {list(features.shape)} and labels {list(labels.shape)} do not "
            "make [M, F] features with M labels"
        )
    return payload


class EmbeddingSource:
    """The three splits of one `leo-embed` run as class pools of float features.

    `centre`: subtract the mean feature of the training split from every split, then
    L2-normalise (SimpleShot's CL2N; the mean is of training classes only, so no test
    statistic leaks in). Applied to the data, every method on these features sees the same
    numbers. `checkpoint_sha256`: refuse files of any other pretrained checkpoint."""

    def __init__(
        self, root: str, centre: bool = False, checkpoint_sha256: str | None = None
    ) -> None:
        self.root, self.centre, self.checkpoint_sha256 = Path(root), centre, checkpoint_sha256
        self.provenance: dict[str, Any] | None = None

    def prepare(self) -> None:
        missing = [str(p) for s in SPLITS if not (p := split_path(self.root, s)).is_file()]
        if missing:
            raise DataNotFoundError(
                f"data.source.root={self.root}: missing {', '.join(missing)}; write them with "
                "leo-embed ckpt_path=<a leo-pretrain checkpoint> and point data.source.root at "
                "its <run>/embeddings folder"
            )

    def load(self) -> dict[str, ClassPool]:
        self.prepare()
        payloads = {split: read_split(split_path(self.root, split)) for split in SPLITS}
        self.provenance = self._check_one_run(payloads)
        features = {split: p["features"] for split, p in payloads.items()}
        if self.centre:
            mean = features["train"].mean(dim=0)  # [F], of the training classes only
            features = {s: F.normalize(f - mean, dim=-1) for s, f in features.items()}
        log.info(
            "embeddings from %s (checkpoint sha256 %s…, %d-d features%s)",
            self.provenance.get("checkpoint"),
            str(self.provenance.get("checkpoint_sha256"))[:12],
            features["train"].shape[1],
            ", centred and L2-normalised" if self.centre else "",
        )
        return {
            split: ClassPool.from_labels(
                features[split], p["labels"], p["class_names"], p["class_groups"]
            )
            for split, p in payloads.items()
        }

    def _check_one_run(self, payloads: dict[str, dict]) -> dict[str, Any]:
        provenance = {s: p.get("provenance") or {} for s, p in payloads.items()}
        widths = {s: int(p["features"].shape[1]) for s, p in payloads.items()}
        reference = provenance["train"]
        for split in ("val", "test"):
            differ = [k for k in SAME_RUN_KEYS if provenance[split].get(k) != reference.get(k)]
            if differ or widths[split] != widths["train"]:
                what = ", ".join(differ) if differ else "feature width"
                raise DataError(
                    f"{split_path(self.root, split)} and {split_path(self.root, 'train')} do "
                    f"not come from one leo-embed run (they differ in {what}); embed every "
                    "split with the same checkpoint and data"
                )
        pinned = self.checkpoint_sha256
        if pinned and reference.get("checkpoint_sha256") != pinned:
            raise DataError(
                f"data.source.checkpoint_sha256={pinned}: the embeddings in {self.root} come "
                f"from checkpoint {reference.get('checkpoint')} with sha256 "
                f"{reference.get('checkpoint_sha256')}; embed with the pinned checkpoint or "
                "change the pin"
            )
        return dict(reference)
