"""The normalization layers under study, chosen by one name: torch's BatchNorm2d and
normlab's GroupNorm (torch's, with a faster CPU path), which also serves as LN and IN.

LayerNorm and InstanceNorm are GroupNorm with 1 and C groups: the same layer at two extremes
(Wu & He 2018). So LN normalises each sample over (C, H, W) with a per-channel affine (2·C
parameters) — which `nn.LayerNorm([C, H, W])` would not: it learns C·H·W of each.
"""

import torch
from torch import nn

from normlab.errors import InputError
from normlab.types import Norm

# What each norm averages over, for an N×C×H×W input (used by the explainer and the README).
AXES = {
    "bn": "each channel over (N, H, W): statistics of the whole batch",
    "gn": "each sample, over each group of C/groups channels × (H, W)",
    "ln": "each sample over (C, H, W): GroupNorm with 1 group",
    "in": "each sample and channel over (H, W): GroupNorm with C groups",
    "none": "nothing: identity",
}


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm, faster on a CPU for channels-last maps with more than one group.

    torch's CPU kernel is slow for that case: a GN(4) training step of the MNIST net took
    almost twice an LN one. Normalising a contiguous copy and converting back brings it close
    to LN (docs/performance.md). Same arithmetic, other kernel: results differ from
    nn.GroupNorm's only by float rounding. Elsewhere this is nn.GroupNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.num_groups > 1
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        ):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def check_groups(groups: int, channels: int, layer: str) -> None:
    """GroupNorm needs `groups` to divide the layer's channels; name the layer when it does not."""
    if groups < 1 or channels % groups:  # groups=0 would be a ZeroDivisionError, not a message
        divisors = [g for g in range(1, channels + 1) if channels % g == 0]
        raise InputError(
            "params.yaml",
            f"groups = {groups} does not divide the {channels} channels of "
            f"layer '{layer}' (norm=gn; divisors of {channels}: {divisors})",
        )


def make_norm(norm: Norm, channels: int, groups: int, layer: str) -> nn.Module:
    """The norm layer for `channels` feature maps; `layer` names it in errors."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "gn":
        check_groups(groups, channels, layer)
        return GroupNorm(groups, channels)
    if norm == "ln":
        return GroupNorm(1, channels)
    if norm == "in":
        return GroupNorm(channels, channels)
    return nn.Identity()  # norm == "none"; types.Norm admits nothing else
