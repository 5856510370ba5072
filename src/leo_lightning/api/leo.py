"""`leo_lightning.LEO`: LEO's steps by name, on images, for notebooks and research code.

The LightningModule runs a whole episode at once and its pieces (`LEONet.features`, the
strategy's `initial_latents`, `adapt_latents`, `decode`, `finetune`, `logits`) take backbone
features with a leading task dimension. This facade exposes those same pieces one step at a
time, on images, with the names of the LEO design document:

    codes  = leo.encode_task(support_x, support_y)          # [N, d]
    codes  = leo.inner_update(support_x, support_y, codes)  # latent steps
    params = leo.decode_to_params(codes)                    # {"fc.weight": [N, F]}
    params = leo.finetune_params(support_x, support_y, params)
    logits = leo.classifier(query_x, params)                # [M, N]

It computes nothing itself: every formula is the module's, so these steps give what
`leo-eval` computes for the same episode (evaluation mode: no sampling, BatchNorm running
statistics, dropout off, the learned per-dimension rates), detached. After `leo.train()` they
compute as meta-training does (latents and weights sampled, dropout, BatchNorm statistics of the
examples each call sees) and keep their graph to the model's parameters, so a meta-objective of
one's own can be backpropagated through the latent and fine-tuning steps and stepped with one's
own optimizer; `encode_task(..., distribution=True)` also gives q(z)'s mean, std and KL.
`meta_train_step` runs the module's own outer update (`LEOModule.meta_update`: meta-loss,
per-tensor clipping, NaN/inf skip).

Shapes: examples are `[n, *input_shape]` for one task or `[B, n, *input_shape]` for B tasks;
the outputs follow (codes `[N, d]` or `[B, N, d]`, logits `[M, N]` or `[B, M, N]`). Images are
uint8 (0..255, as the datasets store them) or float in [0, 1]; labels are 0..N-1, every class
present in the support set of every task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import Tensor

from leo_lightning.config.compose import (
    ConfigDirs,
    compose_config,
    config_folders,
    current_directory_as_root,
    with_data_overrides,
)
from leo_lightning.config.validation import validate
from leo_lightning.data.episode import Episode
from leo_lightning.data.user_images import load_images
from leo_lightning.models.distributions import sample_gaussian, split_gaussian
from leo_lightning.strategies.base import LatentStrategy
from leo_lightning.training.checkpoints import plain_config, read_checkpoint
from leo_lightning.training.module import LEOModule, flushing_subnormals
from leo_lightning.training.trusted_targets import check_stored_targets

WEIGHT = "fc.weight"  # the decoded classifier, [N, F]; LEO's classifier has no bias

# The parts of a composed config that describe the model and its data (the rest is about runs).
MODEL_KEYS = ("seed", "data", "model", "strategy")


class LEO:
    """A LEO model, trained or fresh, used one step at a time (see the module docstring).

    `LEO(overrides)` builds a fresh model from the training config with those overrides
    (initialised as `leo_lightning.train(overrides)` would); `LEO.from_checkpoint(path)` loads
    one that the commands or `leo_lightning.train` wrote.
    """

    def __init__(
        self,
        overrides: Sequence[str] = (),
        *,
        config_dir: ConfigDirs = None,
        device: str | torch.device = "cpu",
    ):
        with current_directory_as_root():
            cfg = compose_config("train", list(overrides), config_dir, hydra=False)
            validate(cfg)
            config = {key: plain_config(cfg[key]) for key in MODEL_KEYS}
        with torch.random.fork_rng(devices=[]):  # seeded as a run is; the caller's RNG untouched
            torch.manual_seed(cfg.seed)
            module = instantiate(cfg.model, strategy=cfg.strategy, _recursive_=False)
        module.run_config = config
        self._attach(module, device, optimizer_state=None)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", *, config_dir: ConfigDirs = None
    ) -> LEO:
        """The model of a checkpoint written by `leo-train`, scripts/train.py or
        leo_lightning.train (best-step*.ckpt, last.ckpt, interrupted.ckpt). Its optimizer
        state too, so `meta_train_step` continues where the run stopped. `config_dir`: your
        own config folders, as at training: the classes they name (a strategy of your own)
        may be built from the checkpoint; any other class it names is refused."""
        checkpoint = read_checkpoint(path)  # a clear error for a missing or foreign file
        config_dirs = config_folders(config_dir)
        # Loading restores the run's RNG state (for exact resumes): keep the caller's instead.
        with torch.random.fork_rng(devices=[]):
            module = LEOModule.load_from_checkpoint(
                path, map_location="cpu", weights_only=True, config_dirs=config_dirs
            )
        leo = cls.__new__(cls)
        states = checkpoint.get("optimizer_states") or [None]
        leo._attach(module, device, states[0], source=str(path), config_dirs=config_dirs)
        return leo

    def _attach(
        self,
        module: LEOModule,
        device: str | torch.device,
        optimizer_state: dict | None,
        source: str | None = None,
        config_dirs: Sequence[Path] = (),
    ) -> None:
        """`source`: the checkpoint the model was read from (None: built from the configs), whose
        stored data config may build only what `config_dirs` and the package's configs name."""
        self.module = module.to(device).eval()
        self._source, self._config_dirs = source, list(config_dirs)
        self._optimizer: torch.optim.Optimizer | None = None
        self._optimizer_state = optimizer_state
        self._steps = 0
        self._differentiable = False

    def train(self, mode: bool = True) -> LEO:
        """`mode=True`: the steps compute as in meta-training and keep their graph (see the
        module docstring); `False` (as built): as `leo-eval` does, detached. Returns self."""
        self._differentiable = bool(mode)
        return self

    def eval(self) -> LEO:
        """The steps compute as `leo-eval` does, detached (the default). Returns self."""
        return self.train(False)

    @property
    def training(self) -> bool:
        """Whether the steps are differentiable, as in meta-training (`train()`)."""
        return self._differentiable

    # -- what the model is ----------------------------------------------------------------------

    @property
    def net(self):
        """The LEONet: backbone, decoder, learned rates."""
        return self.module.net

    @property
    def device(self) -> torch.device:
        return self.module.device

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape, e.g. (1, 28, 28)."""
        return self.net.input_shape

    @property
    def config(self) -> dict[str, Any]:
        """The run config the model was built from (data, model, strategy, ...)."""
        return self.module.run_config or {}

    def to(self, device: str | torch.device) -> LEO:
        self.module.to(device)
        return self

    def datamodule(self, overrides: Sequence[str] = ()):
        """The model's dataset as `leo-eval` builds it (the stored data config, with `data.*`
        overrides such as "data.n_way=20" on top), prepared:
        `next(iter(leo.datamodule().test_dataloader()))` is the first batch of the fixed test
        episodes, an Episode of [B, N*K, *input_shape] images and [B, N*K] labels."""
        if "data" not in self.config:
            raise ValueError("this model's config holds no data section to build a dataset from")
        if self._source is not None:  # read from a file: build only what the configs name
            check_stored_targets(self.config["data"], "data", self._source, self._config_dirs)
        datamodule = instantiate(with_data_overrides(self.config["data"], overrides))
        datamodule.prepare_data()
        datamodule.setup("test")
        return datamodule

    def load_images(self, paths: Sequence[str | Path], invert: bool | None = None) -> Tensor:
        """Image files -> uint8 [n, *input_shape], decoded as `leo-predict` does (resized,
        converted to the model's channels; grayscale images on a light background inverted to
        bright ink, unless `invert` says otherwise)."""
        if len(self.input_shape) != 3:
            raise ValueError(f"this model takes feature vectors {self.input_shape}, not images")
        channels, size = self.input_shape[0], self.input_shape[1]
        return load_images([Path(p) for p in paths], channels, size, invert)

    # -- adaptation, as at evaluation -----------------------------------------------------------

    def encode_task(
        self, support_x: Tensor, support_y: Tensor, distribution: bool = False
    ) -> Tensor | dict[str, Tensor]:
        """The initial class codes z0 [N, d] ([B, N, d]): the encoder and relation network's
        mean over each class's examples (strategy=amortized; sampled from q(z) after
        `train()`), or the learned z_meta for every class (strategy=universal).

        `distribution=True` (strategy=amortized): {"codes": z0, "mean": [N, d], "std": [N, d],
        "kl": the KL term of the meta-loss (zero unless sampling, i.e. after `train()`)}."""
        task = self._support(support_x, support_y)
        strategy = self._strategy
        with self._computing():
            if not distribution:
                z0, _ = strategy.initial_latents(self.net, task.features, task.y, task.n_way)
                return task.out(self._result(z0))
            if not hasattr(strategy, "latent_params"):
                raise TypeError(
                    f"strategy {self._strategy_name} has no latent distribution to return: it "
                    "starts every class from the learned z_meta; drop distribution=True"
                )
            params = strategy.latent_params(task.features, task.y, task.n_way)  # [B, N, 2d]
            z0, kl = sample_gaussian(params, sample=self.net.sampling)
            mean, std = split_gaussian(params)
        parts = {"codes": z0, "mean": mean, "std": std}
        return {**{k: task.out(self._result(v)) for k, v in parts.items()}, "kl": kl}

    def inner_update(self, support_x: Tensor, support_y: Tensor, codes: Tensor) -> Tensor:
        """The codes after `model.inner_steps` latent steps z <- z - (alpha / K) grad_z
        L_support, with the learned per-dimension rates alpha: [N, d] ([B, N, d])."""
        task = self._support(support_x, support_y)
        z = task.batch(codes, "codes", 2)
        with self._computing():
            z, _ = self.net.adapt_latents(z, task.features, task.y)
        return task.out(self._result(z))

    def decode_to_params(self, codes: Tensor) -> dict[str, Tensor]:
        """The classifier the codes decode to: {"fc.weight": [N, F]} ([B, N, F]), the mean of
        the decoder's weight distribution (a sample of it after `train()`)."""
        self._step_by_step("decode_to_params")
        z, batched = _with_task_dim(codes, "codes", 2)
        with self._computing():
            weights = self._result(self.net.decode(z.to(self.device)))  # [B, N, F]
        return {WEIGHT: weights if batched else weights[0]}

    def finetune_params(
        self, support_x: Tensor, support_y: Tensor, params: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """The classifier after `model.finetune_steps` steps w <- w - (eta / K) grad_w
        L_support in parameter space, with the learned per-feature rates eta."""
        task = self._support(support_x, support_y)
        weights = task.batch(_weight_of(params), "params['fc.weight']", 2)
        with self._computing():
            weights, _ = self.net.finetune(weights, task.features, task.y)
        return {WEIGHT: task.out(self._result(weights))}

    def classifier(self, query_x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Logits [M, N] ([B, M, N]) of the examples under the classifier `params`: unit-norm
        backbone features times fc.weight, as at evaluation (after `train()`, with dropout and
        the graph, as meta-training classifies its queries)."""
        x, batched = self._examples(query_x, "query_x")
        self._step_by_step("classifier")
        weights, weights_batched = _with_task_dim(_weight_of(params), "params['fc.weight']", 2)
        if weights_batched != batched:
            raise ValueError(
                f"query_x {tuple(query_x.shape)} and params['fc.weight'] "
                f"{tuple(_weight_of(params).shape)}: both need a task dimension, or neither"
            )
        with self._computing():
            logits = self._result(self.net.logits(self.net.features(x), weights.to(self.device)))
        return logits if batched else logits[0]

    def logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """The query logits [M, N] ([B, M, N]) after adapting to the support set, computed by
        the strategy itself exactly as `leo-eval` does (any strategy, either BatchNorm mode:
        with strategy.batch_norm=batch each episode's support and queries are normalised
        together, which the step-by-step methods cannot do); after `train()` as a meta-training
        step computes them, with their graph."""
        support, batched = self._examples(support_x, "support_x")
        query, query_batched = self._examples(query_x, "query_x")
        if query_batched != batched:
            raise ValueError("support_x and query_x: both need a task dimension, or neither")
        y = _labels(support_y, batched, support.shape[:2], "support_y").to(self.device)
        _check_labels(y, "support_y")
        unknown = torch.zeros(query.shape[:2], dtype=torch.long, device=self.device)
        with self._computing(), flushing_subnormals():
            logits = self._result(self.module(Episode(support, y, query, unknown)).query_logits)
        return logits if batched else logits[0]

    def adapt(self, support_x: Tensor, support_y: Tensor) -> dict[str, Tensor]:
        """All of a task's adaptation in one call, as at evaluation: encode_task, inner_update,
        decode_to_params, finetune_params."""
        codes = self.inner_update(support_x, support_y, self.encode_task(support_x, support_y))
        return self.finetune_params(support_x, support_y, self.decode_to_params(codes))

    # -- meta-training outside Lightning --------------------------------------------------------

    def meta_train_step(
        self, support_x: Tensor, support_y: Tensor, query_x: Tensor, query_y: Tensor
    ) -> float:
        """One outer update on one task (or a batch of tasks), exactly as a training step of
        `leo-train` (sampling, dropout and BatchNorm batch statistics; the meta-loss, per-tensor
        clipping, a non-finite loss or gradient skips the update). Adam with `model.lr`, kept
        between calls; constant (model.lr_schedule=constant, no warm-up: only a Trainer knows
        a run's length). Returns the meta-loss before the update."""
        if not self.module.strategy.meta_trained:
            raise TypeError(f"strategy {self._strategy_name} has nothing to meta-train")
        support, batched = self._examples(support_x, "support_x")
        query, query_batched = self._examples(query_x, "query_x")
        if query_batched != batched:
            raise ValueError("support_x and query_x: both need a task dimension, or neither")
        episode = Episode(
            support,
            _labels(support_y, batched, support.shape[:2], "support_y").to(self.device),
            query,
            _labels(query_y, batched, query.shape[:2], "query_y").to(self.device),
        )
        n_way = _check_labels(episode.support_y, "support_y")
        if int(episode.query_y.min()) < 0 or int(episode.query_y.max()) >= n_way:
            raise ValueError(f"query_y: labels must be among the support's classes 0..{n_way - 1}")
        optimizer = self._outer_optimizer()
        self.module.train()
        try:
            with torch.enable_grad(), flushing_subnormals():  # as training_step
                terms, _ = self.module.meta_update(episode, optimizer, self._steps)
        finally:
            self.module.eval()
        self._steps += 1
        return float(terms["loss"].detach())

    def _outer_optimizer(self) -> torch.optim.Optimizer:
        hp = self.module.hparams
        if hp.lr_schedule != "constant" or hp.warmup_steps:
            raise ValueError(
                f"model.lr_schedule={hp.lr_schedule} model.warmup_steps={hp.warmup_steps}: "
                "meta_train_step steps at a constant model.lr; a schedule runs under a Trainer "
                "(leo_lightning.train), which knows the run's length"
            )
        if self._optimizer is None:
            self._optimizer = self.module.configure_optimizers()
            if self._optimizer_state is not None:
                self._optimizer.load_state_dict(self._optimizer_state)
                self._optimizer_state = None
        return self._optimizer

    # -- inputs -----------------------------------------------------------------------------------

    @property
    def _strategy(self) -> LatentStrategy:
        self._step_by_step("encode_task, inner_update and finetune_params")
        return self.module.strategy

    def _step_by_step(self, what: str) -> None:
        """LEO's steps apply to the latent strategies, with BatchNorm that normalises each
        example on its own (running statistics); otherwise they would compute something that
        leo-eval does not. `logits` computes leo-eval's result for every strategy."""
        strategy = self.module.strategy
        if not isinstance(strategy, LatentStrategy):
            raise TypeError(
                f"strategy {self._strategy_name} has no latent codes or decoded classifier: "
                f"{what} need strategy=amortized or strategy=universal; leo.logits(support_x, "
                "support_y, query_x) gives this model's predictions as leo-eval computes them"
            )
        if strategy.batch_norm == "batch":
            raise ValueError(
                f"strategy.batch_norm=batch normalises each episode's support and queries "
                f"together (transductive), so {what} cannot be computed from the support or the "
                "queries alone; leo.logits(support_x, support_y, query_x) computes what leo-eval "
                "does"
            )

    @property
    def _strategy_name(self) -> str:
        return type(self.module.strategy).__name__

    @contextlib.contextmanager
    def _computing(self) -> Iterator[None]:
        """The module in evaluation mode, or in training mode after `train()` (sampling,
        dropout, batch statistics); autograd on whatever grad mode the caller is in (a
        strategy's inner loop may differentiate even at evaluation: MAML's does)."""
        was_training = self.module.training
        self.module.train(self._differentiable)
        try:
            with torch.enable_grad():
                yield
        finally:
            self.module.train(was_training)

    def _result(self, value: Tensor) -> Tensor:
        """A step's result: with its graph after `train()`, detached otherwise."""
        return value if self._differentiable else value.detach()

    def _examples(self, x: Tensor, name: str) -> tuple[Tensor, bool]:
        """[n, *shape] or [B, n, *shape], uint8 or float in [0, 1] -> [B, n, *shape] on the
        model's device, and whether the caller gave a task dimension."""
        shape = tuple(self.input_shape)
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[-len(shape) :]) != shape or x.ndim not in (len(shape) + 1, len(shape) + 2):
            raise ValueError(
                f"{name} {tuple(x.shape)}: expected [n, {', '.join(map(str, shape))}] or "
                f"[tasks, n, {', '.join(map(str, shape))}] (the model's input_shape)"
            )
        if x.dtype != torch.uint8 and not x.is_floating_point():
            raise TypeError(f"{name}: expected uint8 or float values, got {x.dtype}")
        if len(shape) == 3 and x.is_floating_point() and x.numel():
            low, high = float(x.min()), float(x.max())
            if low < 0 or high > 1:
                raise ValueError(
                    f"{name}: float images must lie in [0, 1] (uint8 / 255); these span "
                    f"[{low:.3g}, {high:.3g}]. Pass uint8 0..255, or divide by 255"
                )
        batched = x.ndim == len(shape) + 2
        return (x if batched else x[None]).to(self.device), batched

    def _support(self, support_x: Tensor, support_y: Tensor) -> _Support:
        self._step_by_step("encode_task, inner_update and finetune_params")
        x, batched = self._examples(support_x, "support_x")
        y = _labels(support_y, batched, x.shape[:2], "support_y").to(self.device)
        n_way = _check_labels(y, "support_y")
        with self._computing():
            features = self.net.features(x)  # [B, N*K, F]
        return _Support(features, y, n_way, batched)


class _Support:
    """A support set as the net takes it ([B, ...]), and how to give results back."""

    def __init__(self, features: Tensor, y: Tensor, n_way: int, batched: bool):
        self.features, self.y, self.n_way, self.batched = features, y, n_way, batched

    def batch(self, value: Tensor, name: str, ndim: int) -> Tensor:
        """A per-class tensor ([N, ...] or [B, N, ...]) given for this support set."""
        given = tuple(value.shape)
        value, batched = _with_task_dim(value, name, ndim)
        leading = (self.y.shape[0], self.n_way)
        if batched != self.batched or tuple(value.shape[:2]) != leading:
            expected = (
                f"[{leading[0]}, {self.n_way}, ...]" if self.batched else f"[{self.n_way}, ...]"
            )
            raise ValueError(
                f"{name} {given}: the support set has {self.n_way} classes"
                f"{f' in {leading[0]} tasks' if self.batched else ''}, so expected {expected}"
            )
        return value.to(self.features.device)

    def out(self, value: Tensor) -> Tensor:
        return value if self.batched else value[0]


def _with_task_dim(value: Tensor, name: str, ndim: int) -> tuple[Tensor, bool]:
    """[N, ...] (ndim dims) or [B, N, ...] -> [B, N, ...], and whether it had B."""
    if value.ndim == ndim:
        return value[None], False
    if value.ndim == ndim + 1:
        return value, True
    raise ValueError(f"{name} {tuple(value.shape)}: expected {ndim} dimensions, or {ndim + 1}")


def _weight_of(params: dict[str, Tensor]) -> Tensor:
    if WEIGHT not in params:
        raise KeyError(f"params has no {WEIGHT!r} (it has {sorted(params)}): see decode_to_params")
    return params[WEIGHT]


def _labels(y: Tensor, batched: bool, leading: torch.Size, name: str) -> Tensor:
    """Integer labels [n] or [B, n] matching the examples' leading dimensions -> [B, n]."""
    if not isinstance(y, Tensor):
        y = torch.as_tensor(y)
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer labels, got {y.dtype}")
    y = y.long() if batched else y.long()[None]
    if tuple(y.shape) != tuple(leading):
        given = tuple(y.shape if batched else y.shape[1:])
        expected = tuple(leading if batched else leading[1:])
        raise ValueError(f"{name} {given}: expected {expected}, one label per example")
    return y


def _check_labels(y: Tensor, name: str) -> int:
    """Labels 0..N-1 with every class in every task (LEO makes one code per class); N."""
    if y.numel() == 0 or int(y.min()) < 0:
        raise ValueError(f"{name}: labels must be 0..N-1")
    n_way = int(y.max()) + 1
    counts = torch.nn.functional.one_hot(y, n_way).sum(dim=1)  # [B, N]
    for task, task_counts in enumerate(counts):
        missing = (task_counts == 0).nonzero().flatten().tolist()
        if missing:
            raise ValueError(
                f"{name}: labels must be 0..N-1 with every class present; task {task} has no "
                f"example of class(es) {missing} (N = {n_way})"
            )
    return n_way
