"""LEO's encoder: one code per support example."""

from __future__ import annotations

from torch import Tensor, nn

from leo_lightning.models.dropout import FeatureDropout


class Encoder(nn.Module):
    """Dropout, then a bias-free linear map F -> d with Glorot init, as in the original."""

    def __init__(self, feature_dim: int, latent_dim: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = FeatureDropout(dropout)
        self.linear = nn.Linear(feature_dim, latent_dim, bias=False)
        nn.init.xavier_uniform_(self.linear.weight)

    def forward(self, features: Tensor) -> Tensor:  # [B, N*K, F] -> [B, N*K, d]
        return self.linear(self.dropout(features))
