"""The torch modules a layout (normlab.layout) is built from: blocks, residual sums, the net.

Kept apart from the grammar so that layout.py reads as the language and this as the layers.
"""

from dataclasses import dataclass

import torch
from torch import nn

from normlab.models import ConvBlock, Dropout
from normlab.norms import make_norm


@dataclass(frozen=True)
class Style:
    """What build's knobs set for every layer of a layout."""

    norm: str
    groups: int
    dropout: float
    bias: bool  # every conv carries a bias
    norm_first: bool  # conv-norm-relu


class Block(ConvBlock):
    """A ConvBlock whose conv (any module: a Conv2d, or a residual's Sum) and bias are given.

    The layers are registered in ConvBlock's order, Conv, ReLU, Norm, Dropout, whatever `order`
    is: features.last_norm finds the norm at index 2, and a cnn layout's parameters and init
    come out exactly as models.MnistNet's. `norm_first` changes only the order they run in.
    Sequential.__init__ is called directly: ConvBlock's builds its own conv, with a bias only
    for norm == "none".
    """

    def __init__(self, conv: nn.Module, channels: int, style: Style, name: str, dropout: bool):
        nn.Sequential.__init__(
            self,
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
    """features → global average pooling → 1×1 head, as models.MnistNet (same module names)."""

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
