"""The networks, with the norm layer switchable: a seed-style MNIST CNN under 10k parameters and
a residual CNN under 50k parameters for CIFAR-10.

MnistNet blocks are Conv → ReLU → Norm → Dropout, as in the course write-ups normlab
replicates (README: Studies), so that swapping `norm` changes exactly one thing. Convs carry no
bias: every norm but `none` has its own shift.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from normlab.config import Scope
from normlab.norms import make_norm


class Dropout(nn.Module):
    """Dropout (zero each element with probability p, scale the rest by 1/(1-p)), cheap on a CPU.

    Why not nn.Dropout: on a CPU torch draws its mask with one call of its serial random
    generator per element (bernoulli_), and with dropout after every MNIST block that was a
    third of a training step on 2 cores (docs/performance.md). Here only the dropped elements
    are drawn: the gaps between them are i.i.d. geometric(p), so for p = 0.05 the generator runs
    for ~5 % of the elements and the mask is exactly Bernoulli(1 - p) per element, as torch's.
    (The cost grows with p.)
    Elsewhere (CUDA, MPS) torch's own dropout is already cheap and CUDA-graph safe.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        scale = torch.full((x.numel(),), 1 / (1 - self.p), dtype=x.dtype)
        scale[dropped(x.numel(), self.p)] = 0
        layout = torch.empty_like(
            x, device="meta"
        ).stride()  # x's, if dense: channels_last stays so
        return x * scale.as_strided(x.shape, layout)


def dropped(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted indices in [0, n) of the elements dropped with probability p each, independently.

    The gap from one dropped element to the next is geometric(p): ⌊log(U) / log(1 - p)⌋ + 1.
    Drawn from `generator` (a packed run's own, normlab.packed), else torch's global one.
    """
    ends, reach = [], 0
    while reach < n:  # usually one pass; a further one draws the few gaps the last fell short by
        left = n - reach
        u = torch.rand(
            int(left * p + math.sqrt(left * p)) + 16, dtype=torch.float64, generator=generator
        )  # float64: whole tail
        gaps = (
            u.neg_().log1p_().div_(math.log1p(-p)).floor_().add_(1).long()
        )  # log1p(-u): u = 0 is fine
        ends.append(gaps.cumsum_(0).add_(reach))
        reach = int(ends[-1][-1])
    ends = torch.cat(ends)
    return (
        ends[: int(torch.searchsorted(ends, n, right=True))] - 1
    )  # sorted: those ≤ n are a prefix


class ConvBlock(nn.Sequential):
    """Conv → ReLU → Norm → Dropout; `name` labels the norm layer in error messages."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        pad: int,
        norm: str,
        groups: int,
        dropout: float,
        name: str,
    ):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=norm == "none"),
            nn.ReLU(),
            make_norm(norm, c_out, groups, name),
            Dropout(dropout),
        )


class MnistNet(nn.Module):
    """The write-ups' style of MNIST CNN, 8,690 parameters with any norm (8,602 with `norm=none`).

    Channels 8, 16, 8 (1×1 squeeze), 16, 16, 24, then global average pooling and a 1×1 head.
    `padded=False` (`model: cnn`, MNIST's): valid 3×3 convs but the last, 28×28 → 26 → 24 →
    pool 12 → 12 → 10 → 8 → 8, receptive field 18.
    `padded=True` (`model: cnn-pad`, Fashion-MNIST's): the same weights, every 3×3 conv padded
    and a second pool, 28 → 28 → 28 → pool 14 → 14 → 14 → 14 → pool 7 → 7, receptive field 24.
    Each weight sees 1.5× the positions: that helps on Fashion-MNIST, where the net underfits,
    not on MNIST (measurements: docs/fashion-mnist.md).
    """

    def __init__(
        self,
        norm: str,
        groups: int,
        dropout: float,
        in_channels: int = 1,
        classes: int = 10,
        padded: bool = False,
    ):
        super().__init__()
        pad = int(padded)

        def block(c_in: int, c_out: int, name: str, kernel: int = 3, pad: int = pad) -> ConvBlock:
            return ConvBlock(c_in, c_out, kernel, pad, norm, groups, dropout, name)

        self.features = nn.Sequential(
            block(in_channels, 8, "conv1"),
            block(8, 16, "conv2"),
            nn.MaxPool2d(2),
            block(16, 8, "squeeze", kernel=1, pad=0),
            block(8, 16, "conv3"),
            block(16, 16, "conv4"),
            *([nn.MaxPool2d(2)] if padded else []),
            block(16, 24, "conv5", pad=1),  # the seed pads its last conv in either layout
        )
        self.head = nn.Conv2d(24, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3), keepdim=True)  # global average pooling
        return self.head(x).flatten(1)


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


def build(
    model: str, norm: str, groups: int, dropout: float, in_channels: int, classes: int
) -> nn.Module:
    """The network named by the recipe's `model`."""
    if model in ("cnn", "cnn-pad"):
        return MnistNet(norm, groups, dropout, in_channels, classes, padded=model == "cnn-pad")
    return ResNet(norm, groups, dropout, in_channels, classes)  # "resnet": Recipe admits no other


def penalized(model: nn.Module, scope: Scope = "weights") -> list[nn.Parameter]:
    """The parameters L1 or L2 act on, by scope (config.Scope):

    weights              conv and linear weights, never norm affines or biases (normlab's)
    weights+norm-scales  every parameter named "weight": those and the norms' scales (seed 002)
    all                  every parameter, biases and norm shifts too (the other seeds' code)
    """
    if scope == "all":
        return list(model.parameters())
    if scope == "weights+norm-scales":
        return [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "weight"]
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
