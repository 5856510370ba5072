"""Reference points that need no learning, scored on the same fixed episodes as the models."""

from __future__ import annotations

import torch
from torch import Tensor

from leo_lightning.data.episode import Episode


def pixel_nearest_neighbour(episode: Episode) -> Tensor:
    """Label of the nearest support example in pixel space (Euclidean): [B, N*Q] predictions."""
    support = episode.support_x.flatten(2).float()  # [B, N*K, P]
    query = episode.query_x.flatten(2).float()  # [B, N*Q, P]
    nearest = torch.cdist(query, support).argmin(dim=-1)  # [B, N*Q]
    return episode.support_y.gather(1, nearest)
