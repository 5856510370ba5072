"""Write the features of a pretrained backbone for every split of a dataset (LEO's second stage).

The command around it is `leo-embed` (cli/embed.py, scripts/embed.py). It reads a `leo-pretrain`
checkpoint (checked: intact, a pretraining one, a backbone class the configs name), runs its
backbone in eval mode and fp32 over every example of the train, val and test splits of the data
(by default the data it was pretrained on; `data=<name>` or `data.<key>=` change it) and writes
`<run>/embeddings/<split>.pt` (data/embeddings.py), which `data=embeddings` reads back. With
`views` > 1 each example's feature is the mean over the plain image and views - 1 distortions
by the data's augmentation (the original LEO's "multiview" features). With `leo_layout=<name>` it
also writes them in the original LEO's pickle layout (data/leo_embeddings.py).
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from leo_lightning.data.augment import Augmentation
from leo_lightning.data.class_pool import ClassPool
from leo_lightning.data.classification import examples_and_labels
from leo_lightning.data.embeddings import SPLITS, write_split
from leo_lightning.data.leo_embeddings import key_problems, write_embedding_file
from leo_lightning.data.sampling import episode_generator
from leo_lightning.errors import ConfigError
from leo_lightning.jobs.common import write_json
from leo_lightning.jobs.stored_data import check_example_shape, stored_data_config
from leo_lightning.models.batch_norm import has_batch_norm
from leo_lightning.models.inputs import as_float
from leo_lightning.strategies.base import BN_NONE, BN_RUNNING
from leo_lightning.training.pretrainer import pretrained_backbone
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


def embed(cfg: DictConfig) -> dict:
    """Run one embedding job described by `cfg`; returns what it writes to results.json."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    check_leo_layout(cfg.leo_layout)
    backbone, hparams, stored = pretrained_backbone(cfg.ckpt_path)
    data = stored_data_config(cfg, stored["config"])
    input_shape = tuple(hparams["input_shape"])
    check_example_shape(data, list(input_shape))
    datamodule = instantiate(data)
    augment = datamodule.augment if cfg.views > 1 else None
    if cfg.views > 1 and augment is None:
        raise ConfigError(
            [
                f"views={cfg.views}: averaging over views needs an augmentation of the images "
                "to draw them with; add data/augment=affine (or set views=1)"
            ]
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = backbone.to(device)
    datamodule.prepare_data()
    pools = datamodule.source.load()  # every split as it is (data.trainval merges none here)
    provenance = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "checkpoint_sha256": file_sha256(cfg.ckpt_path),
        "state_dict_sha256": stored.get("state_dict_sha256"),
        "backbone": hparams["backbone"],
        "input_shape": list(input_shape),
        "data": OmegaConf.to_container(data, resolve=True),
        "views": int(cfg.views),
        # the backbone runs in eval mode: its BatchNorm layers use their running statistics
        "batch_norm": BN_RUNNING if has_batch_norm(backbone) else BN_NONE,
        "version": __version__,
    }
    out = run_dir / "embeddings"
    if cfg.leo_layout:  # refused before the features are computed, not after
        problems = [
            f"leo_layout={cfg.leo_layout}: split {split}: {problem}"
            for split in SPLITS
            for problem in key_problems(pools[split].class_names)
        ]
        if problems:
            raise ConfigError(problems)
    files = {}
    for split in SPLITS:
        pool = pools[split]
        if pool.example_shape != input_shape:
            raise ConfigError(
                [
                    f"data: split {split} holds examples of shape {list(pool.example_shape)}, "
                    f"but the checkpoint's backbone takes {list(input_shape)}"
                ]
            )
        rows, labels = examples_and_labels(pool)  # every example of a class, and its class
        images = pool.data[rows]
        features = image_features(
            backbone, images, cfg.batch_size, device, cfg.views, augment, cfg.seed, split
        )
        files[split] = str(
            write_split(out, split, features, labels, pool.class_names, _groups(pool), provenance)
        )
        log.info("%s: %d examples, %d classes -> %s", split, len(labels), pool.n_classes, out)
        if cfg.leo_layout:
            view = "multiview" if cfg.views > 1 else "center"
            path = out / "leo_layout" / cfg.leo_layout / view / f"{split}_embeddings.pkl"
            write_embedding_file(path, split, features, labels, pool.class_names)
            files[f"{split}_leo_layout"] = str(path)
    results = {
        "embeddings": str(out),
        "files": files,
        "feature_dim": int(features.shape[1]),
        **{k: provenance[k] for k in ("checkpoint", "checkpoint_sha256", "views")},
        "version": __version__,
    }
    write_json(run_dir / "results.json", results)
    print(f"embeddings written to {out} (train with data=embeddings data.source.root={out})")
    return results


# Examples whose distortions one generator draws (views > 1). Fixed, so that a file does not
# depend on leo-embed's batch_size; with the default batch_size the blocks are its batches.
DISTORTION_BLOCK = 256


@torch.no_grad()
def image_features(
    backbone: nn.Module,
    images: Tensor,
    batch_size: int,
    device: torch.device,
    views: int = 1,
    augment: Augmentation | None = None,
    seed: int = 0,
    split: str = "",
) -> Tensor:
    """The backbone's raw features of `images` [M, *example_shape], in order: [M, F]. With
    `views` > 1, the mean over the plain image and views - 1 distortions, each block of
    DISTORTION_BLOCK examples drawn from its own seeded generator, so that the file is the same
    on every machine and at every batch size."""

    @lru_cache(maxsize=2 * views)  # a batch spans at most two blocks per view
    def distorted_block(view: int, block: int) -> Tensor:  # [<= DISTORTION_BLOCK, *shape]
        generator = episode_generator(seed, f"embed/{split}/{view}", block)
        return augment(images[block : block + DISTORTION_BLOCK], generator)

    def distorted(view: int, start: int, end: int) -> Tensor:  # examples start..end of a view
        first = start - start % DISTORTION_BLOCK
        parts = [
            distorted_block(view, block)[max(start - block, 0) : end - block]
            for block in range(first, end, DISTORTION_BLOCK)
        ]
        return torch.cat(parts)

    out = []
    for start in range(0, len(images), batch_size):
        end = min(start + batch_size, len(images))
        total = backbone(as_float(images[start:end]).to(device)).float()  # [b, F]
        for view in range(1, views):
            total += backbone(as_float(distorted(view, start, end)).to(device)).float()
        out.append((total / views).cpu())
    return torch.cat(out)


def check_leo_layout(name: str | None) -> None:
    """The dataset name of leo_layout is one folder's name (data.source.dataset reads it)."""
    if name is None:
        return
    if not name or name in (".", "..") or any(c in name for c in "/\\") or name != name.strip():
        raise ConfigError(
            [f"leo_layout={name!r}: expected a dataset name to use as one folder's name"]
        )


def _groups(pool: ClassPool) -> list[str] | None:
    if pool.groups is None:
        return None
    return [pool.group_names[g] for g in pool.groups.tolist()]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
