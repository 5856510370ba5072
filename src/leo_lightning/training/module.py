"""The LEO LightningModule: meta-training with manual optimization, evaluation with metrics.

The strategy decides how each task is adapted; this module owns what every strategy shares:
the meta-loss, the optimizer, per-tensor clipping, skipping non-finite updates and the metrics.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from leo_lightning.data.episode import Episode
from leo_lightning.errors import ConfigError, TrainingDiverged
from leo_lightning.models import precision
from leo_lightning.models.leo import LEONet
from leo_lightning.strategies.base import ModelDims, Strategy, TaskOutput
from leo_lightning.strategies.catalog import strategy_class
from leo_lightning.strategies.spec import StrategySpec, add_settings_it_lacked, move_keys
from leo_lightning.training import dashboards, schedules
from leo_lightning.training.checkpoints import (
    CHECKPOINT_KEY,
    plain_config,
    read_checkpoint,
    state_digest,
)
from leo_lightning.training.clipping import all_finite, clip_per_tensor_
from leo_lightning.training.metrics import EpisodeAccuracy, episode_accuracy
from leo_lightning.training.pretrainer import pretrained_backbone
from leo_lightning.training.settings import LEOSettings
from leo_lightning.training.trusted_targets import check_stored_targets
from leo_lightning.version import __version__

log = logging.getLogger(__name__)


@contextlib.contextmanager
def flushing_subnormals() -> Iterator[None]:
    """Confident softmaxes in the inner loop produce subnormal floats, and their second-order
    backward runs about 10x slower on x86 CPUs unless subnormals are flushed to zero. The flag
    is process-wide, so it is set for each step and reset after it, even when the step raises:
    a failed fit in a notebook must not leave the process computing differently."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)  # the process default


def _flushing_subnormals(step):
    """A hook that runs under `flushing_subnormals`."""

    @functools.wraps(step)
    def flushing(*args, **kwargs):
        with flushing_subnormals():
            return step(*args, **kwargs)

    return flushing


class LEOModule(L.LightningModule):
    """The backbone, strategy and shared LEO network, meta-trained with manual optimization.

    `backbone` and `strategy` are config nodes (`_target_` and their keys); `settings` are the
    model settings by name (`latent_dim=64, inner_steps=5, ...`), every one not given at its
    default in training/settings.py, where each is declared once."""

    def __init__(
        self,
        backbone: Mapping,
        strategy: Mapping,
        input_shape: list[int],
        **settings: Any,
    ):
        super().__init__()
        self.automatic_optimization = False
        backbone, strategy = plain_config(backbone), plain_config(strategy)
        input_shape = list(input_shape)
        strategy, settings = _with_moved_keys(strategy, settings)
        s = LEOSettings.from_mapping(settings)
        # Every setting is recorded (defaults too): a checkpoint rebuilds the same model
        self.save_hyperparameters(
            {"backbone": backbone, "strategy": strategy, "input_shape": input_shape, **s.as_dict()}
        )
        self.net = LEONet(
            backbone=instantiate(backbone),
            input_shape=tuple(input_shape),
            latent_dim=s.latent_dim,
            inner_steps=s.inner_steps,
            inner_lr=s.inner_lr,
            finetune_steps=s.finetune_steps,
            finetune_lr=s.finetune_lr,
            first_order=s.first_order,
            dropout=s.dropout,
            channels_last=s.channels_last,
            backbone_autocast=s.backbone_autocast,
            deterministic=s.deterministic,
            per_step_rates=s.per_step_rates,
            decoder=s.decoder,
            decoder_experts=s.decoder_experts,
            compile_inner_loops=s.compile_inner_loops,
            latent_step_bound=s.latent_step_bound,
        )
        backbone_shapes = tuple(
            (name, tuple(p.shape)) for name, p in self.net.backbone.named_parameters()
        )
        dims = ModelDims(
            self.net.feature_dim,
            s.latent_dim,
            s.dropout,
            backbone_shapes,
            relation=s.relation,
            relation_rounds=s.relation_rounds,
        )
        # Partial: `dims` reaches the strategy as it is (instantiate would make it a config).
        self.strategy: Strategy = instantiate(strategy, _partial_=True)(dims=dims)
        # A switch its strategy does not use is refused, not ignored (the commands say so
        # before any work; this covers a module built from Python).
        problems = self.strategy.spec.switch_problems(self.hparams, strategy)
        if problems:
            raise ConfigError(problems)
        if s.backbone_freeze:
            self._freeze_backbone()
        self.val_acc, self.test_acc = EpisodeAccuracy(), EpisodeAccuracy()
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self.consecutive_skips = 0
        self.run_config: dict | None = None  # the composed run config, stored in checkpoints
        # What the validation dashboards draw, gathered on rank 0 over one validation epoch.
        self._latent_norms: list[tuple[Tensor, Tensor]] = []  # (|z0|, |z|) [B, N] per batch
        self._shown_episode: tuple[Tensor, ...] | None = None  # one task and its predictions

    def _freeze_backbone(self) -> None:
        if self.strategy.steps_through_backbone():
            raise ConfigError(
                [
                    f"model.backbone_freeze=true: strategy={self.strategy.spec.name} adapts the "
                    "backbone's parameters in its inner loop, so they cannot be frozen; use a "
                    "strategy that adapts on features, or model.backbone_lr_scale to slow the "
                    "backbone's meta-training"
                ]
            )
        self.net.backbone.requires_grad_(False)
        self.net.backbone.eval()

    def train(self, mode: bool = True) -> LEOModule:
        """A frozen backbone stays in eval mode: its BatchNorm keeps the statistics it has
        (Lightning switches the whole module to train mode around every validation)."""
        super().train(mode)
        if self.hparams.get("backbone_freeze"):
            self.net.backbone.eval()
        return self

    def init_backbone(self, ckpt_path: str) -> None:
        """Start from the backbone weights of a leo-pretrain checkpoint (model.backbone_init),
        which must be this model's backbone: the same class, on examples of the same shape,
        with parameters and buffers of the same names and shapes."""
        pretrained, hparams, _ = pretrained_backbone(ckpt_path)
        problem = _architecture_difference(
            (hparams.get("backbone", {}).get("_target_"), list(hparams.get("input_shape", []))),
            (self.hparams.backbone.get("_target_"), list(self.hparams.input_shape)),
            pretrained.state_dict(),
            self.net.backbone.state_dict(),
        )
        if problem:
            raise ConfigError(
                [
                    f"model.backbone_init={ckpt_path}: its backbone is not this model's "
                    f"({problem}); set model.backbone and the data to the pretrained ones"
                ]
            )
        self.net.backbone.load_state_dict(pretrained.state_dict())
        log.info("model.backbone_init: backbone weights from %s", ckpt_path)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        map_location: Any = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool = True,
        config_dirs: Sequence[str | Path] = (),
        **kwargs: Any,
    ) -> LEOModule:
        """Lightning's load, after checking that the checkpoint is this project's (read with
        weights_only=True) and that the backbone and strategy it would build are classes the
        configs name (trusted_targets): `__init__` instantiates them from the stored
        hyper-parameters. `config_dirs`: the user's own config folders, whose classes are
        trusted too. Parts passed in `kwargs` are the caller's, not the file's."""
        checkpoint = read_checkpoint(checkpoint_path)
        stored = checkpoint.get("hyper_parameters") or {}
        for role in ("backbone", "strategy"):
            if role not in kwargs:
                check_stored_targets(stored.get(role), role, str(checkpoint_path), config_dirs)
        if "strategy" not in kwargs and isinstance(stored.get("strategy"), Mapping):
            strategy, notes = _with_settings_it_lacked(stored["strategy"])
            if notes:  # the checked target, with the settings it was trained with
                kwargs["strategy"] = strategy
            for note in notes:
                log.info(note)
        return super().load_from_checkpoint(
            checkpoint_path,
            map_location=map_location,
            hparams_file=hparams_file,
            strict=strict,
            weights_only=weights_only,
            **kwargs,
        )

    def setup(self, stage: str) -> None:
        self._resolve_precision()

    def on_fit_start(self) -> None:
        """What is being trained, in one line (instead of Lightning's table)."""
        if self.trainer.is_global_zero:
            counts = {
                name: sum(p.numel() for p in part.parameters())
                for name, part in (("network", self.net), ("strategy", self.strategy))
            }
            log.info(
                "model: %s parameters (network %s, strategy %s %s), backbone precision %s",
                f"{sum(counts.values()):,}",
                f"{counts['network']:,}",
                self.strategy.spec.name,
                f"{counts['strategy']:,}",
                precision.as_record(self.net.precision)["name"] if self.net.precision else "fp32",
            )
            for logger in self.loggers:
                if isinstance(logger, TensorBoardLogger):
                    dashboards.add_layout(logger.experiment)

    def _resolve_precision(self) -> None:
        """Decide `model.backbone_autocast=auto` once, on rank 0 for the device it trains on,
        and give every rank the same answer (a probe per rank could disagree). The module is
        not on its device yet when `setup` runs: the strategy's root device is where it goes."""
        if self.net.precision is not None:
            return
        strategy = self.trainer.strategy
        chosen = (
            self.net.resolve_precision(strategy.root_device) if strategy.is_global_zero else None
        )
        self.net.precision = strategy.broadcast(chosen, src=0)

    # -- the meta-objective ---------------------------------------------------------------------

    def forward(self, episode: Episode) -> TaskOutput:
        return self.strategy(self.net, episode)

    def meta_loss(self, out: TaskOutput, query_y: Tensor) -> dict[str, Tensor]:
        """Mean query cross-entropy + beta KL + gamma encoder penalty + lambda1 L2 + lambda2 orth

        L2 covers every weight matrix of the decoder (the FiLM or gate matrix too) and of the
        strategy (encoder, relation network); the orthogonality penalty is the decoder's
        (averaged over the experts of a mixture)."""
        hp = self.hparams
        query_loss = F.cross_entropy(out.query_logits.flatten(0, 1), query_y.flatten())
        weights = self.strategy.regularized_weights()
        orthogonality = query_loss.new_zeros(())
        if self.strategy.uses_decoder:  # else the decoder is unused: no penalty trains it
            weights = [*self.net.decoder.regularized_weights(), *weights]
            orthogonality = self.net.decoder.orthogonality_penalty()  # mean over any experts
        l2 = sum((w.square().sum() for w in weights), query_loss.new_zeros(())) / 2  # tf l2_loss
        loss = (
            query_loss
            + hp.kl_weight * out.kl
            + hp.encoder_penalty_weight * out.encoder_penalty
            + hp.l2_weight * l2
            + hp.orthogonality_weight * orthogonality
        )
        return {
            "loss": loss,
            "query_loss": query_loss,
            "kl": out.kl,
            "encoder_penalty": out.encoder_penalty,
            "l2": l2,
            "orthogonality": orthogonality,
        }

    # -- training ---------------------------------------------------------------------------------

    @_flushing_subnormals
    def training_step(self, batch: Episode, batch_idx: int) -> Tensor:
        terms, out = self.meta_update(batch, self.optimizers(), batch_idx)
        self._log_train(terms, out, batch)
        return terms["loss"].detach()

    def meta_update(
        self, batch: Episode, optimizer: torch.optim.Optimizer, batch_idx: int
    ) -> tuple[dict[str, Tensor], TaskOutput]:
        """One outer update: the meta-loss, its gradient, per-tensor clipping, and the step
        unless the loss or a gradient is non-finite (then skipped and counted). The one copy,
        run by training_step under a Trainer and by LEO.meta_train_step without one (there
        the backward is plain autograd and no other rank has a say)."""
        attached = self._trainer is not None
        out = self(batch)
        terms = self.meta_loss(out, batch.query_y)
        optimizer.zero_grad()
        if attached:
            self.manual_backward(terms["loss"])
        else:
            terms["loss"].backward()
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        finite = clip_per_tensor_(grads, self.hparams.grad_clip_value, self.hparams.grad_clip_norm)
        finite = bool(finite & terms["loss"].isfinite())
        if self._all_ranks(finite):
            optimizer.step()
            self._stop_if_weights_are_non_finite()
            self.consecutive_skips = 0
            if attached and (scheduler := self.lr_schedulers()) is not None:
                scheduler.step()  # model.lr_schedule moves once per applied update
        else:
            self._skip_update(batch_idx)
        return terms, out

    def _skip_update(self, batch_idx: int) -> None:
        """A NaN/inf loss or gradient skips the outer update, as the original LEO does."""
        self.skipped_steps += 1
        self.consecutive_skips += 1
        log.warning(
            "non-finite loss or gradient at batch %d: update skipped (%d in a row, %d in all)",
            batch_idx,
            self.consecutive_skips,
            int(self.skipped_steps),
        )
        if self.consecutive_skips >= self.hparams.max_consecutive_skips:
            saved = self._save_last_good_state()
            raise TrainingDiverged(
                f"{self.consecutive_skips} consecutive meta-updates had a non-finite loss or "
                f"gradient (model.max_consecutive_skips={self.hparams.max_consecutive_skips}); "
                f"training stopped. {saved}Lower model.lr or the inner rates, or check the data."
            )

    def _all_ranks(self, flag: bool) -> bool:
        """True only if `flag` holds on every rank (a skip or stop must be the same everywhere);
        without a Trainer there is one process."""
        if self._trainer is None:
            return flag
        return self.trainer.strategy.reduce_boolean_decision(flag, all=True)

    def _stop_if_weights_are_non_finite(self) -> None:
        """Finite gradients can still make non-finite weights (an Adam step with a huge
        model.lr overflows). Such a state must never be trained on or saved, and undoing the
        step would need a copy of the weights at every step, so training stops right here,
        before any checkpoint is written. One fused check: a max-abs norm per weight tensor."""
        if self._all_ranks(bool(all_finite(self.parameters()))):
            return
        raise TrainingDiverged(
            f"the meta-update of step {self.global_step} made the weights non-finite "
            f"(model.lr={self.hparams.lr}); training stopped and this state was not saved. "
            f"{self._last_saved_state()}Lower model.lr or the inner rates, or check the data."
        )

    def _save_last_good_state(self) -> str:
        """Skipped updates leave weights and optimizer untouched: the current state is the last
        good one, if its weights are finite (a run resumed from a checkpoint with non-finite
        weights has none). Save it where the checkpoint callback keeps last.ckpt."""
        callback = self._trainer.checkpoint_callback if self._trainer is not None else None
        dirpath = getattr(callback, "dirpath", None)
        if not dirpath:
            return ""
        if not self._all_ranks(bool(all_finite(self.parameters()))):
            return f"The weights are not finite, so nothing was saved. {self._last_saved_state()}"
        path = f"{dirpath}/last.ckpt"
        self.trainer.save_checkpoint(path, weights_only=False)
        return f"The last good state is in {path}. "

    def _last_saved_state(self) -> str:
        """Where this run's latest last.ckpt is, if one was written."""
        callback = self._trainer.checkpoint_callback if self._trainer is not None else None
        dirpath = getattr(callback, "dirpath", None)
        if dirpath and (Path(dirpath) / "last.ckpt").is_file():
            return f"The latest saved state is {Path(dirpath) / 'last.ckpt'}. "
        return ""

    def _log_train(self, terms: dict[str, Tensor], out: TaskOutput, batch: Episode) -> None:
        n_tasks = batch.query_y.shape[0]
        metrics = {f"train/{name}": value.detach() for name, value in terms.items()}
        metrics["train/skipped_steps"] = self.skipped_steps.float()
        names = out.support_loss_names or [f"step_{i}" for i in range(len(out.support_losses))]
        for name, loss in zip(names, out.support_losses):  # one curve per step, by its loop
            metrics[f"train/support_loss/{name}"] = loss
        self.log_dict(metrics, batch_size=n_tasks)
        query_acc = episode_accuracy(out.query_logits, batch.query_y).mean()
        self.log("train/query_acc", query_acc, prog_bar=True, batch_size=n_tasks)

    def configure_optimizers(self):
        """Adam at model.lr, with model.lr_schedule's scheduler if it has one (schedules.py).
        Lightning saves and restores the scheduler; meta_update steps it (manual optimization).
        With model.backbone_lr_scale != 1 the backbone's parameters are a group of their own at
        model.lr x the scale (each group records its `lr_scale`, so a resume with another
        model.lr keeps the ratio); a frozen backbone's parameters are in no group."""
        trainable = [p for p in self.parameters() if p.requires_grad]  # a frozen backbone: none
        scale = self.hparams.backbone_lr_scale
        if scale == 1.0:  # one group, as checkpoints of 0.2.0 have
            optimizer = torch.optim.Adam(trainable, lr=self.hparams.lr)
        else:
            mine = {id(p) for p in self.net.backbone.parameters()}
            backbone = [p for p in trainable if id(p) in mine]
            groups = [
                {"params": backbone, "lr": self.hparams.lr * scale, "lr_scale": scale},
                {"params": [p for p in trainable if id(p) not in mine], "lr_scale": 1.0},
            ]
            groups[0]["name"], groups[1]["name"] = "backbone", "meta"  # train/lr/backbone, ...
            optimizer = torch.optim.Adam([g for g in groups if g["params"]], lr=self.hparams.lr)
        max_steps = self.trainer.max_steps if self._trainer is not None else -1
        hp = self.hparams
        scheduler = schedules.build_scheduler(optimizer, hp.lr_schedule, hp.warmup_steps, max_steps)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}

    # -- evaluation -------------------------------------------------------------------------------

    @_flushing_subnormals
    def adapt_and_score(self, batch: Episode) -> tuple[TaskOutput, Tensor, float]:
        """The strategy's output, per-episode accuracy [B] and the wall time of adaptation
        (seconds, data excluded)."""
        _synchronize(self.device)
        start = time.perf_counter()
        with torch.enable_grad():  # the inner loop differentiates even at evaluation
            out = self(batch)
        _synchronize(self.device)
        accuracy = episode_accuracy(out.query_logits, batch.query_y)
        return out, accuracy, time.perf_counter() - start

    def on_validation_epoch_start(self) -> None:
        self._latent_norms, self._shown_episode = [], None

    def validation_step(self, batch: Episode, batch_idx: int) -> None:
        out, accuracy, _ = self.adapt_and_score(batch)
        self.val_acc.update(accuracy)
        if self._tensorboards() and self.trainer.is_global_zero:  # only rank 0 writes events
            self._collect_dashboards(batch, batch_idx, out)

    def on_validation_epoch_end(self) -> None:
        mean, ci95, _ = self.val_acc.compute()
        self.val_acc.reset()
        # Already reduced over ranks; sync_dist averages identical values (and silences a warning).
        self.log_dict({"val/acc": mean, "val/acc_ci95": ci95}, prog_bar=True, sync_dist=True)
        self._log_rate_histograms()
        self._log_dashboards()

    def _tensorboards(self) -> list[TensorBoardLogger]:
        """The TensorBoard loggers that take histograms and images now (not in the sanity check)."""
        if self.trainer.sanity_checking:
            return []
        return [logger for logger in self.loggers if isinstance(logger, TensorBoardLogger)]

    def _log_rate_histograms(self) -> None:
        """The learned per-dimension rates, so users see them move away from their init."""
        for logger in self._tensorboards():
            for name in ("inner_lr", "finetune_lr"):
                values = getattr(self.net, name).detach().float().cpu()
                add_finite_histogram(logger.experiment, f"rates/{name}", values, self.global_step)
                if values.ndim == 2:  # model.per_step_rates: each step's rates too
                    for step, row in enumerate(values):
                        tag = f"rates/{name}/step_{step}"
                        add_finite_histogram(logger.experiment, tag, row, self.global_step)

    def _collect_dashboards(self, batch: Episode, batch_idx: int, out: TaskOutput) -> None:
        """Keep what the validation dashboards draw: the norms of the class codes before and
        after the latent steps, and the first episode of the first batch with its predictions
        (the validation episodes are fixed, so it is the same episode at every validation).
        Rank 0's own episodes only: no collective runs here, so no rank can wait on another."""
        if out.latents is not None:
            z0, z = out.latents
            self._latent_norms.append((z0.norm(dim=-1).cpu(), z.norm(dim=-1).cpu()))
        if batch_idx == 0 and dashboards.drawable(tuple(batch.support_x.shape[2:])):
            predicted = out.query_logits[0].argmax(-1)
            task = (batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0])
            self._shown_episode = tuple(t.detach().cpu() for t in (*task, predicted))

    def _log_dashboards(self) -> None:
        """Histograms of the latent-code norms and the picture of the shown episode."""
        norms, self._latent_norms = self._latent_norms, []
        shown, self._shown_episode = self._shown_episode, None
        loggers = self._tensorboards()
        if not loggers or not self.trainer.is_global_zero:
            return
        image = None
        if shown is not None:
            name = f"validation episode 0, step {self.global_step}"
            title = dashboards.episode_title(name, shown[1], shown[3], shown[4])
            image = dashboards.render(dashboards.episode_figure(*shown, title=title))
        for logger in loggers:
            writer = logger.experiment
            if norms:
                initial, adapted = (torch.cat([t.flatten() for t in n]) for n in zip(*norms))
                add_finite_histogram(writer, "latents/norm_initial", initial, self.global_step)
                add_finite_histogram(writer, "latents/norm_adapted", adapted, self.global_step)
            if image is not None:
                writer.add_image("val/episode", image, self.global_step, dataformats="HWC")

    def on_test_epoch_start(self) -> None:
        self._adapt_seconds, self._adapt_tasks = 0.0, 0

    def test_step(self, batch: Episode, batch_idx: int) -> None:
        _, accuracy, seconds = self.adapt_and_score(batch)
        self.test_acc.update(accuracy)
        self._adapt_seconds += seconds
        self._adapt_tasks += accuracy.numel()

    def on_test_epoch_end(self) -> None:
        mean, ci95, episodes = self.test_acc.compute()
        self.test_acc.reset()
        adapt_ms = torch.tensor(1000 * self._adapt_seconds / max(self._adapt_tasks, 1))
        self.log_dict(
            {
                "test/acc": mean,
                "test/acc_ci95": ci95,
                "test/episodes": episodes,
                "test/adapt_ms_per_task": adapt_ms,
            },
            sync_dist=True,  # adaptation time is per rank: averaged; the rest are already global
        )

    # -- checkpoints ------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The RNG state makes a resumed run draw the same dropout masks and latent samples as
        # an uninterrupted one (Lightning restores weights, optimizer and step, not the RNG).
        checkpoint[CHECKPOINT_KEY] = {
            "format": 1,
            "version": __version__,  # the leo-lightning that wrote it
            "state_dict_sha256": state_digest(checkpoint["state_dict"]),  # checked on load
            "config": self.run_config,
            "rng": {"cpu": torch.get_rng_state()},
        }
        if self.net.precision is not None:  # what ran, whatever the config said
            checkpoint[CHECKPOINT_KEY]["backbone_precision"] = precision.as_record(
                self.net.precision
            )
        if torch.cuda.is_available():
            checkpoint[CHECKPOINT_KEY]["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._apply_configured_lr(checkpoint)
        stored = checkpoint.get(CHECKPOINT_KEY, {})
        self.run_config = stored.get("config")
        rng = stored.get("rng", {})
        if "cpu" in rng:
            torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _apply_configured_lr(self, checkpoint: dict) -> None:
        """Lightning restores the optimizer with the checkpoint's learning rate, so a resume
        with another model.lr (a common, legitimate change) trained with the old one while the
        hparams and TensorBoard recorded the new one. The configured rate goes into the
        checkpoint's optimizer state here, before Lightning loads it from this same dict.
        Under a schedule the whole curve moves: the rate of this step scales with the base."""
        groups = [g for s in checkpoint.get("optimizer_states", []) for g in s["param_groups"]]
        previous = {group.get("initial_lr", group["lr"]) / _scale(group) for group in groups}
        if previous and previous != {self.hparams.lr}:
            log.info(
                "resuming with model.lr=%g (the checkpoint's optimizer had lr=%s)",
                self.hparams.lr,
                ", ".join(f"{lr:g}" for lr in sorted(previous)),
            )
        ratio = 1.0
        for group in groups:
            base = self.hparams.lr * _scale(group)
            if "initial_lr" in group:  # set by a scheduler: the base of its curve
                ratio = base / group["initial_lr"]
                group["lr"], group["initial_lr"] = group["lr"] * ratio, base
            else:
                group["lr"] = base
        bases = [self.hparams.lr * _scale(group) for group in groups]
        for state in checkpoint.get("lr_schedulers", []):  # one optimizer
            schedules.rebase_scheduler_state(state, bases, ratio)


def _spec_of(strategy: Mapping) -> StrategySpec | None:
    """The spec of a stored strategy config's class; None where it names none we know
    (instantiate then says what is wrong with it)."""
    try:
        return strategy_class(strategy["_target_"]).spec
    except (KeyError, ValueError):
        return None


def _with_settings_it_lacked(strategy: Mapping) -> tuple[dict, list[str]]:
    """A stored strategy config with the settings added since its checkpoint was written, at
    the values it was trained with (spec.add_settings_it_lacked), and a line for each."""
    spec = _spec_of(strategy)
    return add_settings_it_lacked(spec, strategy) if spec else (dict(strategy), [])


def _with_moved_keys(strategy: dict, settings: dict) -> tuple[dict, dict]:
    """The strategy's config and the model's settings with the strategy's old spellings moved
    to their keys (spec.MovedKey): a checkpoint of 0.2.0 stored MAML's steps as
    `inner_steps` among the model's settings, and its rate as the strategy's `inner_lr`."""
    spec = _spec_of(strategy)
    if spec is None:
        return strategy, settings
    tree = {"strategy": dict(strategy), "model": dict(settings)}
    for note in move_keys(spec, tree, over_new=False):
        log.info(note)
    return tree["strategy"], tree["model"]


def _architecture_difference(
    theirs: tuple, mine: tuple, their_state: Mapping[str, Tensor], my_state: Mapping[str, Tensor]
) -> str | None:
    """The first difference between two backbones, in words, or None. `theirs` and `mine`:
    (class, input shape)."""
    if theirs[0] != mine[0]:
        return f"{theirs[0]}, not {mine[0]}"
    if theirs[1] != mine[1]:
        return f"examples of shape {theirs[1]}, not {mine[1]}"
    for key in sorted(set(their_state) | set(my_state)):
        if key not in their_state or key not in my_state:
            return f"{key} only in {'this model' if key in my_state else 'the checkpoint'}"
        a, b = list(their_state[key].shape), list(my_state[key].shape)
        if a != b:
            return f"{key} has shape {a} there, {b} here"
    return None


def _scale(group: dict) -> float:
    """A parameter group's rate as a multiple of model.lr (checkpoints of 0.2.0 have one group,
    at model.lr, and no `lr_scale`)."""
    return float(group.get("lr_scale", 1.0))


def add_finite_histogram(writer: Any, tag: str, values: Tensor, step: int) -> None:
    """TensorBoard cannot bin inf or NaN ("The histogram is empty"): draw the finite values
    only and say how many were left out, so that a diverged model never stops a validation."""
    finite = values[values.isfinite()]
    if finite.numel() < values.numel():
        log.warning(
            "%s at step %d: %d of %d values are not finite and are left out of the histogram",
            tag,
            step,
            values.numel() - finite.numel(),
            values.numel(),
        )
    if not finite.numel():
        return
    try:
        writer.add_histogram(tag, finite, step)
    except ValueError as error:  # huge finite values: TensorBoard's bins overflow
        log.warning(
            "%s at step %d: not drawn, TensorBoard cannot bin values up to %.3g (%s); the run "
            "goes on",
            tag,
            step,
            float(finite.abs().max()),
            error,
        )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
