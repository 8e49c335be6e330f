"""The CIFAR-10 net: a residual CNN of separable convs under 50k parameters, with the norm
layer switchable. The grammar of normlab.nets.layout cannot write it (depthwise convs, a
linear head), so it is a class of its own; `model: resnet` names it.
"""

import torch
from torch import nn

from normlab.nets.blocks import Dropout
from normlab.nets.norms import make_norm


class SepConv(nn.Sequential):
    """Depthwise 3×3 → pointwise 1×1 → Norm → ReLU: a 3×3 conv's reach for ~1/9 of its weights.

    Under a 50k-parameter budget this buys depth and width: on the CIFAR-10 proxy it beat a
    plain-conv ResNet of the same size by ~4 points, which underfit (docs/cifar10-proxy.md).
    """

    def __init__(self, c_in: int, c_out: int, norm: str, groups: int, name: str):
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=norm == "none"),
            make_norm(norm, c_out, groups, name),
            nn.ReLU(),
        )


class ResStage(nn.Module):
    """Widen (SepConv) → max-pool, then x + SepConv(…SepConv(x)): the residual keeps depth
    trainable."""

    def __init__(self, c_in: int, c_out: int, depth: int, norm: str, groups: int, name: str):
        super().__init__()
        self.down = nn.Sequential(
            SepConv(c_in, c_out, norm, groups, f"{name}.down"), nn.MaxPool2d(2)
        )
        self.res = nn.Sequential(
            *(SepConv(c_out, c_out, norm, groups, f"{name}.res{i + 1}") for i in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return x + self.res(x)


class ResNet(nn.Module):
    """32×32 → stem conv 32 → stage 64 @16×16 → stage 112 @8×8 → global avg pool → dropout → linear.

    49,642 parameters with BN/GN/LN/IN (49,082 with `norm=none`); widths 32, 64, 112 admit
    groups ∈ {1, 2, 4, 8, 16}. Seven norm layers, each named in errors (stem, stage1.down, …).
    """

    WIDTHS = (32, 64, 112)
    DEPTH = 2  # SepConvs in each stage's residual branch

    def __init__(
        self, norm: str, groups: int, dropout: float, in_channels: int = 3, classes: int = 10
    ):
        super().__init__()
        stem, w1, w2 = self.WIDTHS
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, padding=1, bias=norm == "none"),
            make_norm(norm, stem, groups, "stem"),
            nn.ReLU(),
        )
        self.stages = nn.Sequential(
            ResStage(stem, w1, self.DEPTH, norm, groups, "stage1"),
            ResStage(w1, w2, self.DEPTH, norm, groups, "stage2"),
        )
        self.drop = Dropout(dropout)
        self.head = nn.Linear(w2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(self.drop(x.mean(dim=(2, 3))))  # global average pooling
