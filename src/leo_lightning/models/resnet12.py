"""The few-shot ResNet-12 (TADAM, MetaOptNet, RFS): a deeper backbone than Conv4 for RGB images.

Four residual stages, each [conv 3x3, BatchNorm, LeakyReLU(0.1)] x 3 added to a [conv 1x1,
BatchNorm] shortcut, then LeakyReLU and a 2x2 max-pool; a global average pool at the end makes
the feature [n, widths[-1]] whatever the image size (84 px: 84 -> 42 -> 21 -> 10 -> 5, then the
mean over the 5 x 5 positions; 28 px: down to 1 x 1). Unlike Conv4's flattened map, the feature
size does not grow with the image, so LEO's decoder stays the same size at 84 px.

It is built only of standard layers, as Conv4 is, so everything that handles Conv4 handles it:
`torch.func.functional_call` and `torch.vmap` over its parameters (maml, meta_sgd, per_task),
the swap of every BatchNorm for a `SupportBatchNorm` (models/batch_norm.py), channels-last and
autocast (models/precision.py), and the memory estimate, which sums every leaf module's output
(training/memory.py): every map-sized activation is a module of its own for that reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def conv_bn(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    """Conv (no bias: the BatchNorm right after it has one) and its BatchNorm."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]


class ResidualStage(nn.Module):
    """[n, C_in, H, W] -> [n, C_out, H // 2, W // 2]: three 3x3 convs plus a 1x1 shortcut, the
    sum activated and max-pooled."""

    def __init__(self, in_channels: int, out_channels: int, negative_slope: float):
        super().__init__()
        # In-place activations, as Conv4's: each overwrites a BatchNorm output that nothing else
        # reads, and the memory saved is one map per layer in every kept inner step.
        self.body = nn.Sequential(
            *conv_bn(in_channels, out_channels, 3),
            nn.LeakyReLU(negative_slope, inplace=True),
            *conv_bn(out_channels, out_channels, 3),
            nn.LeakyReLU(negative_slope, inplace=True),
            *conv_bn(out_channels, out_channels, 3),
        )
        # Always a projection, even where the widths match: the standard few-shot ResNet-12 has
        # one in every stage, and its 1x1 conv is cheap next to the three 3x3 ones.
        self.shortcut = nn.Sequential(*conv_bn(in_channels, out_channels, 1))
        self.activation = nn.LeakyReLU(negative_slope, inplace=True)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        # The sum is a fresh tensor that only the activation reads: safe to activate in place.
        return self.pool(self.activation(self.body(x) + self.shortcut(x)))


class ResNet12(nn.Module):
    """The standard few-shot ResNet-12, globally average-pooled to [n, widths[-1]].

    `widths` gives one residual stage each (the standard four: 64, 160, 320, 640); each stage
    halves the image, so it needs images of at least 2 ** len(widths) pixels. The weights keep
    PyTorch's default initialisation, as Conv4's do: a BatchNorm follows every conv, so their
    scale does not matter, and per_task draws fresh weights with each layer's
    `reset_parameters`, which gives the same initialisation. No DropBlock (optional in
    MetaOptNet and RFS): LEO already drops out features (model.dropout).
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        negative_slope: float = 0.1,
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"model.backbone.widths={widths}: expected one or more widths >= 1")
        channels = [in_channels, *widths]
        self.stages = nn.Sequential(
            *(ResidualStage(a, b, negative_slope) for a, b in zip(channels, channels[1:]))
        )
        # Known without a forward pass, unlike Conv4's (which grows with the image).
        self.feature_dim = widths[-1]

    def forward(self, x: Tensor) -> Tensor:  # [n, C, H, W] -> [n, widths[-1]]
        return self.stages(x).mean(dim=(-2, -1))  # global average pool over [H', W']
