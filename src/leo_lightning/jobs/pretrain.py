"""Pretrain a backbone by plain classification over the training classes (LEO's first stage).

The command around it is `leo-pretrain` (cli/pretrain.py, scripts/pretrain.py). The
run folder is a training run's: `checkpoints/best-*.ckpt` (the best few-shot validation score
of the embedding), `checkpoints/last.ckpt` (resumable with ckpt_path=last), TensorBoard events
and `results.json`. Its checkpoints are what `leo-embed` and `model.backbone_init` read.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from leo_lightning.data.datamodule import EpisodicDataModule
from leo_lightning.data.pretrain_datamodule import PretrainDataModule
from leo_lightning.jobs.common import build_trainer, write_json
from leo_lightning.models import precision
from leo_lightning.training.allocator import allocator_record
from leo_lightning.training.checkpoints import check_checkpoint_folders
from leo_lightning.training.pretrainer import KIND, Pretrainer, read_pretrain_checkpoint
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


def pretrain(cfg: DictConfig) -> dict:
    """Run one pretraining job described by `cfg`; returns what it writes to results.json."""
    started = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    episodes: EpisodicDataModule = instantiate(cfg.data)
    datamodule = PretrainDataModule(episodes, cfg.pretrain.batch_size, seed=cfg.seed)
    trainval = bool(cfg.data.get("trainval", False))
    trainer = build_trainer(cfg, **({"limit_val_batches": 0} if trainval else {}))
    check_checkpoint_folders(trainer.callbacks)
    if cfg.ckpt_path:  # fail now, not after the data is prepared
        read_pretrain_checkpoint(cfg.ckpt_path)

    datamodule.prepare_data()
    pool = datamodule.train_pool  # the training classes, and only those
    module = Pretrainer(
        backbone=cfg.model.backbone,
        input_shape=list(cfg.model.input_shape),
        n_classes=pool.n_classes,
        **OmegaConf.to_container(cfg.pretrain, resolve=True),
    )
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    log.info(
        "pretraining on %d training classes (%d examples), features of width %d",
        pool.n_classes,
        int(pool.counts.sum()),
        module.feature_dim,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)

    checkpoint = trainer.checkpoint_callback
    best = getattr(checkpoint, "best_model_path", "") or None
    best_score = _number(getattr(checkpoint, "best_model_score", None))
    metrics = trainer.callback_metrics
    results = {
        "stage": KIND,
        "run_dir": str(run_dir),
        "best_ckpt": best,
        "last_ckpt": str(run_dir / "checkpoints" / "last.ckpt"),
        "training_classes": pool.n_classes,
        "feature_dim": module.feature_dim,
        "steps": trainer.global_step,
        # the classifier's accuracy on its last training batch (of the training classes)
        "train_acc": _number(metrics.get("train/acc")),
        # few-shot accuracy of the embedding on the fixed validation episodes (nearest
        # centroid on L2-normalised features), the best over the run and the last
        "best_val_acc": None if trainval else best_score,
        "val_acc": None if trainval else _number(metrics.get("val/acc")),
        "wall_seconds": time.perf_counter() - started,
        "allocator": allocator_record(),
        "version": __version__,
    }
    if module.precision is not None:
        results["backbone_precision"] = precision.as_record(module.precision)
    if trainer.is_global_zero:
        write_json(run_dir / "results.json", results)
        log.info(
            "pretrained %d steps: best few-shot val/acc %s, checkpoint %s",
            results["steps"],
            results["best_val_acc"],
            best or results["last_ckpt"],
        )
    return results


def _number(value) -> float | None:
    return None if value is None else float(value)
