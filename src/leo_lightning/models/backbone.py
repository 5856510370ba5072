"""Feature extractors that sit in front of LEO's encoder and classifier."""

from __future__ import annotations

from torch import Tensor, nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """The standard few-shot Conv4: 4 x [conv 3x3, BatchNorm, ReLU, max-pool 2], flattened.

    28 px input gives 64 features, 84 px gives 1600, 105 px gives 2304. It is meta-learned in
    the outer loop only, so its features are computed once per episode.
    """

    def __init__(self, in_channels: int = 1, channels: int = 64, depth: int = 4):
        super().__init__()
        widths = [in_channels] + [channels] * depth
        self.blocks = nn.Sequential(*(conv_block(a, b) for a, b in zip(widths, widths[1:])))

    def forward(self, x: Tensor) -> Tensor:  # [n, C, H, W] -> [n, F]
        return self.blocks(x).flatten(1)


class Flatten(nn.Module):
    """Identity backbone for pre-computed features (the LEO embedding files)."""

    def forward(self, x: Tensor) -> Tensor:  # [n, *shape] -> [n, F]
        return x.flatten(1)
