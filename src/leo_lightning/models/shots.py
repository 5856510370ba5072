"""Weights that make every class of a support set count the same, whatever its number of shots.

Training episodes have K shots per class, but a user's support folder may hold 3 images of one
class and 1 of another. A plain sum over support examples then gives the 3-shot class three
times the pull on the adapted codes, and it takes the queries of the other classes. Weighting
each example by (mean shots per class) / (shots of its class) gives every class the same total
weight, the mean shot count M/N; with equal shots every weight is exactly 1.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def shot_weights(labels: Tensor, n_way: int) -> Tensor:
    """labels [B, M] in 0..N-1 -> float weights [B, M]: (M / N) / (shots of the example's class).

    Each class's weights sum to M / N (the mean shot count), so a weighted sum over the support
    set equals the plain sum when all classes have the same number of shots.
    """
    shots = F.one_hot(labels, n_way).sum(dim=1)  # [B, N]
    mean_shots = labels.shape[1] / n_way
    return mean_shots / shots.gather(1, labels).float()
