"""The networks: a seed-style MNIST CNN under 10k parameters, with the norm layer switchable.

Blocks are Conv → ReLU → Norm → Dropout, as in the seed notebooks, so that swapping `norm`
changes exactly one thing. Convs carry no bias: every norm but `none` has its own shift.
"""

import torch
from torch import nn

from normlab.norms import make_norm


class ConvBlock(nn.Sequential):
    """Conv → ReLU → Norm → Dropout; `name` labels the norm layer in error messages."""

    def __init__(self, c_in: int, c_out: int, kernel: int, pad: int, norm: str, groups: int,
                 dropout: float, name: str):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=norm == "none"),
            nn.ReLU(),
            make_norm(norm, c_out, groups, name),
            nn.Dropout(dropout),
        )


class MnistNet(nn.Module):
    """28×28 → 26 → 24 → pool 12 → 1×1 squeeze → 10 → 8 → 6 → global avg pool → 1×1 head.

    Receptive field 28 at the last conv; about 8.7k parameters with any norm.
    """

    def __init__(self, norm: str, groups: int, dropout: float, in_channels: int = 1, classes: int = 10):
        super().__init__()

        def block(c_in: int, c_out: int, name: str, kernel: int = 3, pad: int = 0) -> ConvBlock:
            return ConvBlock(c_in, c_out, kernel, pad, norm, groups, dropout, name)

        self.features = nn.Sequential(
            block(in_channels, 8, "conv1"),
            block(8, 16, "conv2"),
            nn.MaxPool2d(2),
            block(16, 8, "squeeze", kernel=1),
            block(8, 16, "conv3"),
            block(16, 16, "conv4"),
            block(16, 24, "conv5", pad=1),
        )
        self.head = nn.Conv2d(24, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3), keepdim=True)  # global average pooling
        return self.head(x).flatten(1)


def build(model: str, norm: str, groups: int, dropout: float, in_channels: int, classes: int) -> nn.Module:
    """The network named by the recipe's `model`."""
    if model == "cnn":
        return MnistNet(norm, groups, dropout, in_channels, classes)
    raise NotImplementedError(model)  # `resnet` arrives with the CIFAR-10 work


def penalized(model: nn.Module) -> list[nn.Parameter]:
    """The weights L1 and L2 act on: conv and linear weights, never norm affines or biases."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
