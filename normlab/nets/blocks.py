"""The layers nets are built from: normlab's Dropout, and the blocks, residual sums and whole
net of a layout (normlab.nets.layout is the language, normlab.nets.build puts these together).

Convs carry no bias unless a layout asks for one or the norm is `none`: every other norm has
its own shift.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from normlab.nets.norms import make_norm


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
        return x * scale.as_strided(x.shape, dense_strides(x))


def dense_strides(x: torch.Tensor) -> tuple[int, ...]:
    """The strides torch.empty_like(x) would get: x's own if x is dense (channels_last stays
    so), else those torch suggests. Dense in either memory format needs no meta tensor: that
    is the usual case, and building one costs as much as a small elementwise op."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x.stride()
    return torch.empty_like(x, device="meta").stride()


def dropped(n: int, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted indices in [0, n) of the elements dropped with probability p each, independently.

    The gap from one dropped element to the next is geometric(p): ⌊log(U) / log(1 - p)⌋ + 1.
    Drawn from `generator` if given, else from torch's global one.
    """
    drops, reach = [], 0  # reach: how many elements the gaps drawn so far cover
    while reach < n:  # usually one pass; a further one draws the few gaps the last fell short by
        left = n - reach
        u = torch.rand(
            int(left * p + math.sqrt(left * p)) + 16, dtype=torch.float64, generator=generator
        )  # float64: whole tail
        gaps = (
            u.neg_().log1p_().div_(math.log1p(-p)).floor_().add_(1).long()
        )  # log1p(-u): u = 0 is fine
        drops.append(gaps.cumsum_(0).add_(reach - 1))  # 0-based indices, in integers: exact
        reach = int(drops[-1][-1]) + 1
    # the few ops here are much of a small layer's dropout time: no copy for a single pass
    drops = drops[0] if len(drops) == 1 else torch.cat(drops)
    return drops[: int(torch.searchsorted(drops, n - 1, right=True))]  # sorted: those < n


@dataclass(frozen=True)
class Style:
    """What build's knobs set for every layer of a layout."""

    norm: str
    groups: int
    dropout: float
    bias: bool  # every conv carries a bias
    norm_first: bool  # conv-norm-relu


class Block(nn.Sequential):
    """Conv → ReLU → Norm → Dropout, around a given conv (a Conv2d, or a residual's Sum).

    The layers are registered in this order whatever `style.norm_first` is, which changes only
    the order they run in: features.last_norm finds the norm at index 2 of every block, and the
    `cnn` net keeps the parameter names, shapes and initial values its recorded runs trained
    with. `name` labels the norm layer in error messages.
    """

    def __init__(self, conv: nn.Module, channels: int, style: Style, name: str, dropout: bool):
        super().__init__(
            conv,
            nn.ReLU(),
            make_norm(style.norm, channels, style.groups, name),
            Dropout(style.dropout if dropout else 0.0),
        )
        self.norm_first = style.norm_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.norm_first:
            return super().forward(x)
        conv, relu, norm, dropout = self
        return dropout(relu(norm(conv(x))))


class Sum(nn.Module):
    """body(x) + skip(x): a residual branch and its shortcut, the 'conv' of a residual Block."""

    def __init__(self, body: nn.Sequential, skip: nn.Module):
        super().__init__()
        self.body = body
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class LayoutNet(nn.Module):
    """features → global average pooling → 1×1 head: the net of a layout."""

    def __init__(self, layout: str, features: nn.Sequential, head: nn.Conv2d):
        super().__init__()
        self.layout = layout
        self.features = features
        self.head = head

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3), keepdim=True)  # global average pooling
        return self.head(x).flatten(1)
