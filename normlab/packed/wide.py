"""The wide layers of a packed model that torch has no grouped form of: per-run dropout, a
block-diagonal linear layer, and a layer whose runs differ (normlab.packed.merge builds with
them).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn

from normlab.nets.blocks import dropped

Span = tuple[int, int]  # (first run, number of runs) a packed layer holds


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def dense(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


class PackedDropout(nn.Module):
    """blocks.Dropout for len(generators) runs side by side, each run's mask from its own generator.

    On a CPU each run's mask is drawn exactly as blocks.Dropout draws it alone (blocks.dropped
    over that run's elements, in the memory order its map has alone), so the masks equal solo
    ones. Elsewhere each run draws Bernoulli(1 - p) from its own generator (torch's F.dropout,
    which solo runs use there, takes no generator): the same law, other numbers than alone.
    """

    def __init__(self, p: float, generators: Sequence[torch.Generator]):
        super().__init__()
        self.p = p
        self.generators = list(generators)

    def extra_repr(self) -> str:
        return f"p={self.p}, runs={len(self.generators)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        runs = len(self.generators)
        if x.device.type != "cpu":
            mask = torch.empty_like(x)
            for part, generator in zip(mask.chunk(runs, 1), self.generators, strict=True):
                part.bernoulli_(1 - self.p, generator=generator)
            return x * mask * (1 / (1 - self.p))  # x·mask is exact: one rounding, as F.dropout
        shape = (x.shape[0], x.shape[1] // runs, *x.shape[2:])
        solo = torch.channels_last if _channels_last(x) else torch.contiguous_format
        layout = torch.empty(shape, device="meta", memory_format=solo).stride()
        n = math.prod(shape)
        scales = []
        for generator in self.generators:  # as blocks.Dropout.forward, per run
            scale = torch.full((n,), 1 / (1 - self.p), dtype=x.dtype)
            scale[dropped(n, self.p, generator)] = 0
            scales.append(scale.as_strided(shape, layout))
        return x * torch.cat(scales, 1)


class PackedLinear(nn.Linear):
    """`runs` linear layers side by side: N×(runs·in) → N×(runs·out), weight `runs` row blocks."""

    def __init__(self, runs: int, in_features: int, out_features: int, bias: bool, **factory):
        super().__init__(in_features, runs * out_features, bias, **factory)
        self.runs = runs

    def extra_repr(self) -> str:
        return f"runs={self.runs}, {super().extra_repr()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, runs = x.shape[0], self.runs
        weight = self.weight.view(runs, -1, self.in_features)
        y = torch.einsum("nki,koi->nko", x.reshape(n, runs, -1), weight).reshape(n, -1)
        return y if self.bias is None else y + self.bias


class Mixed(nn.Module):
    """One layer whose runs differ (bn beside gn, a conv with a bias beside one without): each
    stretch of equal runs is one packed layer acting on that stretch's channels."""

    def __init__(self, parts: Sequence[nn.Module], spans: Sequence[Span]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.spans = list(spans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = _channels_last(x) and not x.is_contiguous()
        width = x.shape[1] // sum(n for _, n in self.spans)
        chunks = x.split([n * width for _, n in self.spans], dim=1)
        outs = [part(dense(c, layout)) for part, c in zip(self.parts, chunks, strict=True)]
        return dense(torch.cat(outs, 1), layout)
