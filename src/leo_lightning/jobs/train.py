"""Meta-train, then test the best checkpoint on the fixed test episodes (with data.trainval,
which has no validation to select by, the last one).

`main` is the command (`leo-train`, scripts/train.py); `train` is its job function, which
leo_lightning.train runs too.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from leo_lightning.config.run_label import override_key, without_starting_keys
from leo_lightning.config.schemas import LEOSchema
from leo_lightning.errors import ConfigError
from leo_lightning.jobs.common import build_trainer, format_accuracy, test_metrics, write_json
from leo_lightning.models import precision
from leo_lightning.strategies.catalog import strategy_class
from leo_lightning.training.allocator import allocator_record
from leo_lightning.training.checkpoints import (
    check_checkpoint_folders,
    check_compatible,
    read_checkpoint,
)
from leo_lightning.training.hparams_tab import write_hparams
from leo_lightning.training.memory import PeakStepMemory, step_memory_problem
from leo_lightning.training.module import LEOModule
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Run one training job described by `cfg`; returns the results written to results.json."""
    started = time.perf_counter()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    datamodule: L.LightningDataModule = instantiate(cfg.data)
    module: LEOModule = instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    step_memory = PeakStepMemory()  # measured on one step, for scripts/compare.py
    # data.trainval: the validation classes are training classes, nothing to validate on (the
    # DataModule has no validation loader then; this also keeps Lightning from asking for it)
    trainval = bool(cfg.data.get("trainval", False))
    no_validation = {"limit_val_batches": 0} if trainval else {}
    trainer = build_trainer(cfg, extra_callbacks=[step_memory], **no_validation)
    check_checkpoint_folders(trainer.callbacks)  # before the data is prepared

    if cfg.ckpt_path:  # fail now, not after the data is prepared
        check_compatible(read_checkpoint(cfg.ckpt_path), module, cfg.ckpt_path)
    elif module.hparams.backbone_init:  # a new run starts from the pretrained backbone
        module.init_backbone(module.hparams.backbone_init)
    if module.strategy.meta_trained:  # a step that cannot fit: say so before any work
        problem = step_memory_problem(module, cfg.data, trainer.strategy.root_device)
        if problem:
            raise ConfigError([problem])
    if module.strategy.meta_trained:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    else:
        log.info(
            "strategy %s has nothing to meta-train: skipping fit", type(module.strategy).__name__
        )
    fit_seconds = time.perf_counter() - started

    best_ckpt, selection = _test_checkpoint(trainer, trainval)
    results = {
        "strategy": type(module.strategy).__name__,
        "run_dir": str(run_dir),
        "best_ckpt": best_ckpt,  # the checkpoint that is tested, chosen as `checkpoint_selection`
        "checkpoint_selection": selection,
        "trainval": trainval,
        "best_val_acc": None if trainval else _best_score(trainer),
        "meta_train_steps": trainer.global_step,
        # non-finite meta-updates skipped along the way: they are not in meta_train_steps
        "skipped_updates": int(module.skipped_steps),
        "fit_seconds": fit_seconds,
        "adapted_parameters": module.strategy.adapted_parameters(module.net, cfg.data.n_way),
        "batch_norm": module.strategy.batch_norm_mode(module.net),
        **step_memory.record(),
    }
    if cfg.test:
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best_ckpt, weights_only=True)
        metrics = test_metrics(tested)
        results.update(metrics)
        if trainer.is_global_zero:
            log.info("%s, checkpoint %s", format_accuracy(metrics), best_ckpt)
    results["wall_seconds"] = time.perf_counter() - started
    if module.net.precision is not None:  # what ran, not what was asked for (`auto`)
        results["backbone_precision"] = precision.as_record(module.net.precision)
        results["inner_loop_precision"] = module.strategy.inner_loop_precision(
            module.net, module.device
        )
    features = getattr(getattr(datamodule, "source", None), "provenance", None)
    if features:  # data=embeddings: the pretraining every number traces back to
        results["features"] = {k: features.get(k) for k in FEATURE_RECORD}
    results["allocator"] = allocator_record()
    results["version"] = __version__  # the leo-lightning that ran it
    if trainer.is_global_zero:  # every DDP rank runs this function; one writes
        write_json(run_dir / "results.json", results)
        _log_hparams(trainer, cfg, results)
    return results


# What results.json records of the pretraining behind data=embeddings (data/embeddings.py)
FEATURE_RECORD = (
    "checkpoint",
    "checkpoint_sha256",
    "state_dict_sha256",
    "backbone",
    "views",
    "batch_norm",  # how the pretrained backbone normalised when it computed the features
)


# Always shown in the HParams tab, besides every model setting (the schema's) and the chosen
# strategy's own settings (its spec's); each job's command-line overrides are added to them.
TASK_HPARAM_KEYS = (
    "data.n_way",
    "data.k_shot",
    "data.n_query",
    "data.meta_batch_size",
    "data.image_size",
    "data.augment._target_",  # the augmentation of training images, by its class or function
    "data.trainval",  # meta-trained on train + val classes: no validation, last checkpoint
    "data.within_alphabet",  # val/test episodes within one alphabet (a harder test)
    "trainer.max_steps",
    "seed",
)
# Model keys that are parts or shapes, not hyper-parameters
NOT_HPARAMS = ("_target_", "backbone", "input_shape")


def hparam_keys(cfg: DictConfig) -> list[str]:
    """The keys shown for every run: derived from the model's schema and the strategy's spec,
    so a new setting appears without being listed here."""
    model = [f"model.{f.name}" for f in dataclasses.fields(LEOSchema) if f.name not in NOT_HPARAMS]
    spec = strategy_class(cfg.strategy._target_).spec
    strategy = [f"strategy.{key}" for key in spec.settings]
    return ["strategy._target_", *model, *strategy, *TASK_HPARAM_KEYS]


def hparams(cfg: DictConfig, overrides: list[str]) -> dict:
    """The fixed keys and every key this job's overrides set (a swept key, whatever it is),
    as scalars TensorBoard shows: a group choice (`strategy=maml`) as its option name, a list
    or mapping as text. The overridden keys come first, in the order they were given, then the
    fixed ones (TensorBoard's HParams tab orders its columns itself: see `swept_keys`)."""
    fixed = {key: OmegaConf.select(cfg, key) for key in hparam_keys(cfg)}
    for key in ("strategy._target_", "data.augment._target_"):
        fixed[key] = str(fixed[key]).rsplit(".", 1)[-1]
    overridden = {}
    for override in overrides:
        key, _, text = override.lstrip("+").partition("=")
        if key.startswith(("hydra.", "~")) or not text:  # ~key deletes a key: no value to show
            continue
        value = OmegaConf.select(cfg, key, default=text)
        overridden[key] = text if OmegaConf.is_config(value) else value
    # overridden keys first, then the fixed ones (the strategy first), the overridden values won
    params = {**overridden, **fixed, **overridden}
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in params.items()}


def swept_keys(overrides: list[str], sweep_overrides: list[str] | None) -> set[str]:
    """The keys a run's sweep varied, the HParams tab's first columns: of a multirun job's
    overrides, those its sweep's command line (`sweep_overrides`) does not fix to the same value
    (a comma list, a range, or a value the Optuna sweeper sampled); of a single run
    (`sweep_overrides` None), every key it sets (what it changes from the defaults). Values are
    compared as Hydra parses them: a job's overrides spell `false` as `False`."""
    parse = OverridesParser.create().parse_overrides
    given = {
        override_key(o.input_line): o.value()
        for o in parse(without_starting_keys(overrides))
        if not o.is_delete() and not o.is_hydra_override()
    }
    if sweep_overrides is None:
        return set(given)
    fixed = {
        override_key(o.input_line): o.value()
        for o in parse(sweep_overrides)
        if not o.is_sweep_override() and not o.is_delete()
    }
    return {key for key, value in given.items() if key not in fixed or fixed[key] != value}


def _sweep_overrides() -> list[str] | None:
    """A multirun's command-line overrides as its sweep folder records them (multirun.yaml),
    None for a single run or a sweep folder without the record."""
    hydra = HydraConfig.get()
    if hydra.mode != RunMode.MULTIRUN:
        return None
    record = Path(hydra.sweep.dir) / "multirun.yaml"
    try:
        stored = OmegaConf.select(OmegaConf.load(record), "hydra.overrides.task", default=None)
    except (OSError, ValueError):
        return None
    return None if stored is None else [str(o) for o in stored]


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, results: dict) -> None:
    """The TensorBoard HParams tab: the swept keys first, against real metrics (best validation
    and test accuracy), so the runs of a multirun compare in one view."""
    overrides = list(HydraConfig.get().overrides.task)
    params = hparams(cfg, overrides)
    if "backbone_precision" in results:
        params["backbone_precision"] = results["backbone_precision"]["name"]
    if "inner_loop_precision" in results:
        params["inner_loop_precision"] = results["inner_loop_precision"]
    metrics = {
        f"hparams/{key}": results[key]
        for key in ("best_val_acc", "test/acc", "test/acc_ci95")
        if results.get(key) is not None
    }
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            write_hparams(logger, params, metrics, swept_keys(overrides, _sweep_overrides()))
            logger.finalize("success")


def _checkpoint_callback(trainer: L.Trainer) -> ModelCheckpoint | None:
    return next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)


def _test_checkpoint(trainer: L.Trainer, trainval: bool) -> tuple[str | None, str | None]:
    """The checkpoint to test and how it was chosen: the best by validation accuracy
    ("val/acc"), or last.ckpt ("last") if no validation ran, and always with data.trainval,
    which validates on classes it trains on (nothing to select with; a best path restored
    from a checkpoint of a run without trainval must not be taken either)."""
    callback = _checkpoint_callback(trainer)
    if callback is None:
        return None, None
    if callback.best_model_path and not trainval:
        return callback.best_model_path, "val/acc"
    if trainval:
        log.info("data.trainval=true: no validation; testing the last checkpoint")
    last = _last_checkpoint(trainer, callback)
    return last, "last" if last else None


def _last_checkpoint(trainer: L.Trainer, callback: ModelCheckpoint) -> str | None:
    """last.ckpt of the run (written now if it is not there yet), or None if nothing trained."""
    if trainer.global_step and callback.dirpath:
        last = Path(callback.dirpath) / "last.ckpt"
        if not last.exists():
            trainer.save_checkpoint(last, weights_only=False)
        return str(last)
    return None


def _best_score(trainer: L.Trainer) -> float | None:
    callback = _checkpoint_callback(trainer)
    score = callback.best_model_score if callback else None
    return None if score is None else float(score)
