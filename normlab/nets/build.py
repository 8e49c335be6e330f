"""The one way a recipe's `model` becomes a torch module: a layout's tokens
(normlab.nets.layout) assembled from normlab.nets.blocks, or the CIFAR-10 resnet.

Layers are built in the layout's order, so initial weights draw from the RNG in that order:
the same seed gives the same net.
"""

from torch import nn

from normlab.errors import NormlabError
from normlab.nets import layout
from normlab.nets.blocks import Block, LayoutNet, Style, Sum
from normlab.nets.layout import Token
from normlab.nets.resnet import ResNet
from normlab.types import ORDERS, Order


def _layer(token: Token, channels: int, side: int, style: Style) -> tuple[nn.Module, int, int]:
    """The module for one token, and the channels and map side after it."""
    name = f"{token.text} at token {token.at}"  # names the norm layer in a groups error
    if token.kind == "pool":
        if side < 2:
            raise layout.error(token, f"maps shrink below 1×1: pooling the {side}×{side} map here")
        return nn.MaxPool2d(2), channels, side // 2
    if token.kind == "residual":
        body, width, after = _stack(token.body, channels, side, style)
        if after != side:
            raise layout.error(
                token,
                f"its layers take {side}×{side} maps to {after}×{after}, which "
                "cannot be added to its input: pad its 3×3 convs (C…p, c…p)",
            )
        skip = (
            nn.Identity() if width == channels else nn.Conv2d(channels, width, 1, bias=style.bias)
        )
        return Block(Sum(body, skip), width, style, name, token.dropout), width, side
    after = side - token.kernel + 1 + 2 * token.pad
    if after < 1:
        raise layout.error(
            token,
            f"maps shrink below 1×1: an unpadded 3×3 conv needs a map of 3×3 or more, and "
            f"the map here is {side}×{side} (pad it with p, or pool less)",
        )
    conv = nn.Conv2d(channels, token.width, token.kernel, padding=token.pad, bias=style.bias)
    if token.kind == "conv":
        return conv, token.width, after
    return Block(conv, token.width, style, name, token.dropout), token.width, after


def _stack(
    tokens: tuple[Token, ...] | list[Token], channels: int, side: int, style: Style
) -> tuple[nn.Sequential, int, int]:
    """The modules for consecutive tokens, built in order: init draws in the layout's order."""
    layers = []
    for token in tokens:
        layer, channels, side = _layer(token, channels, side, style)
        layers.append(layer)
    return nn.Sequential(*layers), channels, side


def build(
    model: str,
    *,
    norm: str,
    groups: int,
    dropout: float,
    in_channels: int,
    classes: int,
    size: int,
    order: Order = "conv-relu-norm",
    bias: bool = False,
) -> nn.Module:
    """The network a recipe's `model` names: resnet, or a layout (cnn and cnn-pad by name, or
    its text), for `size`×`size` inputs with `in_channels` channels.

    Raises a one-line error for a `groups` that does not divide a norm's channels, or a layout
    its input cannot take (maps shrinking below 1×1)."""
    if model == layout.RESNET:
        return ResNet(norm, groups, dropout, in_channels, classes)
    if order not in ORDERS:
        raise NormlabError(f"order = {order!r}: allowed {', '.join(ORDERS)}")
    style = Style(norm, groups, dropout, bias or norm == "none", order == "conv-norm-relu")
    text = layout.NAMED.get(model, model)
    *layers, _gap, head = layout.parse(text)
    features, channels, _side = _stack(layers, in_channels, size, style)
    return LayoutNet(text, features, nn.Conv2d(channels, classes, 1, bias=head.bias))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
