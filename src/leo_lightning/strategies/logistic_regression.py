"""`logistic_regression`: RFS's linear probe (Tian et al., 2020) on frozen features.

The second baseline that reviewers hold LEO against on pretrained features: for each task, fit
a multinomial logistic regression (N x F weights and N biases) on the L2-normalised support
features, to convergence, and classify the L2-normalised queries with it. Nothing is shared
between tasks and nothing is meta-learned, so training is skipped and the run is scored on the
fixed test episodes with the backbone as it was given.

The objective of one task, minimised by L-BFGS in fp32 (torch, so that no sklearn is needed):

    sum_i s_i CE(W x_i + b, y_i) + (l2 / 2) ||W||_F^2,

s_i the shot weights of models/shots.py (all 1 with equal shots), the biases unpenalised. That
is sklearn's LogisticRegression(multi_class="multinomial", solver="lbfgs") objective,
C sum_i CE_i + ||W||^2 / 2, divided by C: `l2` = 1 / C, and the default l2 = 1 is sklearn's
and RFS's C = 1. With unequal shots the weights make every class count the same, as in every
other strategy here; sklearn's class_weight="balanced" gives the same weights.

Per task, not one L-BFGS over the batch: the tasks' objectives are separable, but L-BFGS's
curvature history, line search and stopping test take inner products and maxima over the whole
parameter vector, so one run over the summed objective would couple the tasks' iterates and a
task's classifier would depend on the other tasks of its batch (and so on data.eval_batch_size).
The backbone pass is batched; only the small convex fit runs task by task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from leo_lightning.data.episode import Episode
from leo_lightning.models.leo import LEONet
from leo_lightning.models.shots import shot_weights
from leo_lightning.strategies.base import ModelDims, Strategy, TaskOutput, n_way_of
from leo_lightning.strategies.nearest_centroid import frozen_features
from leo_lightning.strategies.spec import NO_STEPS, Setting, StrategySpec

# Converged: the largest entry of the objective's gradient is at most TOLERANCE times the
# support's total weight M (the number of support examples). sklearn minimises this objective
# divided by M (a mean) and stops at gtol = tol on that gradient: this is its rule with
# tol = 1e-6, 100 times its default. fp32 gradients resolve it (~1e-7 rounding per term).
TOLERANCE = 1e-6
# Curvature pairs kept: scipy's L-BFGS-B default, which sklearn uses.
HISTORY = 10
# Evaluations per iteration a strong-Wolfe line search may take (torch's max_ls), so that
# strategy.max_iter, not the evaluation budget, is what caps the iterations.
MAX_LINE_SEARCH = 25
# The line search's own stop: a change of loss or of step below this ends the first phase.
LINE_SEARCH_TOLERANCE = 1e-9

SPEC = StrategySpec(
    name="logistic_regression",
    summary="RFS: a logistic regression fitted by L-BFGS to each task's L2-normalised "
    "frozen features",
    steps=NO_STEPS,
    fitted_per_task="an N x F + N multinomial logistic regression on the L2-normalised support "
    "features, by L-BFGS to convergence",
    meta_learned="nothing (the backbone is used as given, frozen)",
    settings={
        "l2": Setting(
            1.0,
            "weight of the penalty (l2/2)||W||^2 against the summed support cross-entropy; "
            "sklearn's LogisticRegression with C = 1/l2 (the default is sklearn's and RFS's C=1)",
            check=lambda v: v > 0,
            expected="> 0",
        ),
        "max_iter": Setting(
            1000,
            "most L-BFGS iterations per task (RFS's value); the fit stops earlier once converged",
            check=lambda v: v >= 1,
            expected=">= 1",
        ),
    },
    why_not="it fits a logistic regression to frozen features by L-BFGS: no relation network, "
    "decoder, latent codes or learned rates",
    fixed_batch_norm="the frozen backbone's features, normalised with its running statistics",
)


class LogisticRegression(Strategy):
    spec = SPEC
    meta_trained = False
    uses_decoder = False

    def __init__(
        self,
        dims: ModelDims,
        l2: float = SPEC.settings["l2"].default,
        max_iter: int = SPEC.settings["max_iter"].default,
    ):
        super().__init__()
        self.check_settings(l2=l2, max_iter=max_iter)
        self.l2, self.max_iter = float(l2), int(max_iter)

    def forward(self, net: LEONet, episode: Episode) -> TaskOutput:
        support, query = frozen_features(net, episode, normalize=True)  # [B, N*K, F], [B, N*Q, F]
        weights, bias = fit_logistic_regression(
            support, episode.support_y, n_way_of(episode), self.l2, self.max_iter
        )
        logits = query @ weights.transpose(1, 2) + bias.unsqueeze(1)  # [B, N*Q, N]
        zero = logits.new_zeros(())
        return TaskOutput(query_logits=logits, kl=zero, encoder_penalty=zero)

    def adapted_parameters(self, net: LEONet, n_way: int) -> int:
        """The N x F weights and N biases fitted per task."""
        return n_way * net.feature_dim + n_way


def fit_logistic_regression(
    features: Tensor, labels: Tensor, n_way: int, l2: float, max_iter: int
) -> tuple[Tensor, Tensor]:
    """Support features [B, M, F] with labels [B, M] in 0..N-1 -> the minimisers W [B, N, F]
    and b [B, N] of each task's `penalised_loss`, fp32, detached. Each task is fitted alone
    (see the module's docstring), so a task's result does not depend on its batch."""
    example_weights = shot_weights(labels, n_way)  # [B, M], all 1 with equal shots
    with _one_cpu_thread(features.device):
        fitted = [
            _fit_task(x, y, s, n_way, l2, max_iter)
            for x, y, s in zip(features.detach().float(), labels, example_weights)
        ]
    weights, bias = zip(*fitted)
    return torch.stack(weights), torch.stack(bias)


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, the fits run on one intra-op thread, and the previous count is restored.

    Each L-BFGS evaluation is a handful of ops on a few thousand numbers, too small for threads
    to help; a second thread only waits at every op's barrier, and on a 2-core machine with
    another process busy that wait made a 5-way 784-d fit 5 to 100 times slower (5-10 ms per
    task on one thread, 36-880 ms on two). One thread also makes a fit's arithmetic the same
    whatever the machine's thread count."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def penalised_loss(
    weights: Tensor,
    bias: Tensor,
    features: Tensor,
    labels: Tensor,
    example_weights: Tensor,
    l2: float,
) -> Tensor:
    """One task's objective: W [N, F], b [N], features [M, F], labels and weights [M] ->
    sum_i s_i CE(W x_i + b, y_i) + (l2 / 2) ||W||^2 (scalar; the biases unpenalised)."""
    logits = features @ weights.T + bias  # [M, N]
    nll = F.cross_entropy(logits, labels, reduction="none")  # [M]
    return (example_weights * nll).sum() + 0.5 * l2 * weights.square().sum()


def _fit_task(
    features: Tensor,
    labels: Tensor,
    example_weights: Tensor,
    n_way: int,
    l2: float,
    max_iter: int,
) -> tuple[Tensor, Tensor]:
    """L-BFGS from zero on one task: features [M, F] -> W [N, F], b [N], in two phases that
    share one optimizer (its curvature history) and the budget of max_iter iterations.

    1. Strong-Wolfe line search, which converges from any start. In fp32 it stalls short of
       the tolerance: the losses it compares are about M in size, so near the optimum their
       differences drown in rounding (measured: largest gradient entry about 2e-3 at M = 25).
    2. Unit steps without a line search, from there: they read only gradients, which fp32 still
       resolves, and near the optimum, where the objective is close to quadratic, L-BFGS's unit
       step converges fast. Kept only if it ends with a smaller, finite gradient (a safeguard:
       the unit step has no global guarantee).

    Under enable_grad, since evaluation runs without a gradient and this fit needs one; the
    parameters are leaves of their own, so no gradient reaches the backbone or any `.grad`
    of a module."""
    weights = features.new_zeros(n_way, features.shape[1], requires_grad=True)
    bias = features.new_zeros(n_way, requires_grad=True)
    tolerance = TOLERANCE * float(example_weights.sum())
    optimizer = torch.optim.LBFGS(
        [weights, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * MAX_LINE_SEARCH,
        tolerance_grad=tolerance,
        tolerance_change=LINE_SEARCH_TOLERANCE,
        history_size=HISTORY,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=False)
        loss = penalised_loss(weights, bias, features, labels, example_weights, l2)
        loss.backward()
        return loss

    def largest_gradient() -> float:  # at the current weights
        closure()
        return float(torch.cat([weights.grad.flatten(), bias.grad.flatten()]).abs().max())

    with torch.enable_grad():
        optimizer.step(closure)
        iterations = optimizer.state[weights]["n_iter"]
        searched, gradient = (weights.detach().clone(), bias.detach().clone()), largest_gradient()
        if gradient > tolerance and iterations < max_iter:
            # no loss comparison left: only the gradient test or the budget ends it
            optimizer.param_groups[0].update(
                line_search_fn=None, max_iter=max_iter - iterations, tolerance_change=0.0
            )
            optimizer.step(closure)
            polished = largest_gradient()
            if not polished < gradient:  # also when not finite
                with torch.no_grad():
                    weights.copy_(searched[0])
                    bias.copy_(searched[1])
    return weights.detach(), bias.detach()
