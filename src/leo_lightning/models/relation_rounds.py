"""`model.relation_rounds=R`: R rounds of relational refinement, and the relation-network factory.

LEO relates the support codes once: each code's average over its partners is decoded straight
into its class's Gaussian. A multi-step relation network (the design document's first future
improvement) first refines the codes R - 1 times, each round seeing the codes the previous one
produced, so that a code can reflect relations among relations (as in message passing):

    h^0 = encoder codes                                         # [B, M, d], M = N*K
    h^r = h^{r-1} + g_r(h^{r-1})   for r = 1 .. R-1             # g_r: a relational block, [B, M, d]
    params = mean over each class n of f(h^{R-1})_i             # f: the final block, [B, N, 2d]

Each round has its own weights. The update is residual, so a round starts close to the identity
and the codes keep their scale, whatever R. g_r and f are blocks of the same kind
(`model.relation`: pairwise pairs or attention), g_r with output width d instead of 2d. R = 1 is
the final block alone, with today's parameter names, so LEO's default is exactly the paper's.
Every block is permutation-equivariant over the examples, so the whole stack is too: the cost is
R times one block's, O(R * (N*K)^2 * d).
"""

from __future__ import annotations

from torch import Tensor, nn

from leo_lightning.models.relation import RelationNetwork
from leo_lightning.models.relation_attention import AttentionRelation

RELATIONS: dict[str, type[nn.Module]] = {
    "pairwise": RelationNetwork,
    "attention": AttentionRelation,
}


class RelationRounds(nn.Module):
    """Refinement rounds, then the final block that gives the per-class Gaussian params."""

    def __init__(self, refine: list[nn.Module], final: nn.Module):
        super().__init__()
        self.refine = nn.ModuleList(refine)
        self.final = final

    def forward(self, codes: Tensor, labels: Tensor, n_way: int) -> Tensor:
        """codes [B, M, d], labels [B, M] -> Gaussian params [B, N, 2d] (mean | raw scale)."""
        for block in self.refine:
            codes = codes + block.per_example(codes, labels, n_way)  # [B, M, d]
        return self.final(codes, labels, n_way)

    def regularized_weights(self) -> list[Tensor]:
        return [w for block in [*self.refine, self.final] for w in block.regularized_weights()]


def build_relation(kind: str, latent_dim: int, rounds: int = 1) -> nn.Module:
    """The relation network of `model.relation=kind` with `model.relation_rounds=rounds`."""
    if kind not in RELATIONS:
        raise ValueError(f"model.relation={kind!r}: must be one of {', '.join(RELATIONS)}")
    if rounds < 1:
        raise ValueError(f"model.relation_rounds={rounds}: must be >= 1")
    block = RELATIONS[kind]
    if rounds == 1:
        return block(latent_dim)
    refine = [block(latent_dim, out_dim=latent_dim) for _ in range(rounds - 1)]
    return RelationRounds(refine, block(latent_dim))
