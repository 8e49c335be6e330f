"""The networks, with the norm layer switchable: a seed-style MNIST CNN under 10k parameters and
a residual CNN under 50k parameters for CIFAR-10.

MnistNet blocks are Conv → ReLU → Norm → Dropout, as in the seed notebooks, so that swapping
`norm` changes exactly one thing. Convs carry no bias: every norm but `none` has its own shift.
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


class ResStage(nn.Module):
    """Conv → max-pool → Norm → ReLU, then a residual conv: y = ReLU(x + Norm(Conv(x))), then Dropout.

    The widening conv runs before the pool (airbench-style) so each weight sees 4× the pixels
    for the same parameter count; the residual branch is one conv, which keeps a stage of
    width 48 at about 35k parameters.
    """

    def __init__(self, c_in: int, c_out: int, norm: str, groups: int, dropout: float, name: str):
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none"),
            nn.MaxPool2d(2),
            make_norm(norm, c_out, groups, f"{name}.down"),
            nn.ReLU(),
        )
        self.conv = nn.Conv2d(c_out, c_out, 3, padding=1, bias=norm == "none")
        self.norm = make_norm(norm, c_out, groups, f"{name}.res")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.drop(torch.relu(x + self.norm(self.conv(x))))


class ResNet(nn.Module):
    """32×32 → stem 16 → stage 32 @16×16 → stage 48 @8×8 → global avg pool → linear.

    About 49.7k parameters with BN/GN/LN/IN (49.5k with `norm=none`); widths 16, 32, 48 admit
    groups ∈ {1, 2, 4, 8, 16}.
    """

    WIDTHS = (16, 32, 48)

    def __init__(self, norm: str, groups: int, dropout: float, in_channels: int = 3, classes: int = 10):
        super().__init__()
        stem, *stages = self.WIDTHS
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, padding=1, bias=norm == "none"),
            make_norm(norm, stem, groups, "stem"),
            nn.ReLU(),
        )
        widths = (stem, *stages)
        self.stages = nn.Sequential(*(ResStage(c_in, c_out, norm, groups, dropout, f"stage{i + 1}")
                                      for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]))))
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3)))  # global average pooling


def build(model: str, norm: str, groups: int, dropout: float, in_channels: int, classes: int) -> nn.Module:
    """The network named by the recipe's `model`."""
    if model == "cnn":
        return MnistNet(norm, groups, dropout, in_channels, classes)
    if model == "resnet":
        return ResNet(norm, groups, dropout, in_channels, classes)
    raise NotImplementedError(model)  # config.Recipe admits only the models above


def penalized(model: nn.Module) -> list[nn.Parameter]:
    """The weights L1 and L2 act on: conv and linear weights, never norm affines or biases."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
