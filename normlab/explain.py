"""The explainer: which elements of a batch share one mean/std under each norm, computed, not drawn.

Seed write-ups explained BatchNorm/GroupNorm/LayerNorm/InstanceNorm with a spreadsheet and a
figure copied from the Group Normalization paper. Here a tiny N×C×H×W batch goes through the
very layers the models use (`norms.make_norm`, training mode, scale 1 and shift 0), and the
figure and table are built from their outputs, so they cannot drift from the code.
"""

import textwrap
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch
from torch import nn

from normlab.io import atomic_path
from normlab.nets.norms import AXES, make_norm

# 4 images × 2 channels × 2 × 2 of small integers, as in the spreadsheet walk-through: easy to
# redo by hand. No group is constant, so every std is well above sqrt(eps).
SAMPLE = torch.tensor(
    [
        [[[1, 2], [3, 4]], [[0, 2], [4, 6]]],
        [[[2, 4], [6, 8]], [[1, 1], [1, 5]]],
        [[[3, 1], [4, 1]], [[5, 9], [2, 6]]],
        [[[0, 0], [2, 2]], [[7, 1], [8, 2]]],
    ],
    dtype=torch.float32,
)
NORMS = ("bn", "gn", "ln", "in")
GROUPS = 2  # GroupNorm groups in the explainer


@dataclass
class Group:
    """Elements that share one mean and std: all H×W positions of these images and channels."""

    images: list[int]
    channels: list[int]
    inputs: np.ndarray  # the members' input values, in N, C, H, W order
    mean: float
    std: float  # sqrt(biased variance + eps), what the layer divides by
    normalized: np.ndarray  # the layer's output for the members, same order as `inputs`


@dataclass
class Explained:
    norm: str
    layer: str  # e.g. "GroupNorm(1, 2, eps=1e-05, affine=True)"
    axes: str  # norms.AXES[norm]
    eps: float
    x: np.ndarray  # N×C×H×W input
    y: np.ndarray  # N×C×H×W layer output
    group_of: np.ndarray  # N×C: index into `groups` of each (image, channel)
    groups: list[Group]


def share_map(layer: nn.Module, n: int, c: int) -> np.ndarray:
    """N×C group index: which (image, channel) planes the layer pools into one mean/std.

    Read off the layer itself: BatchNorm pools each channel over the batch; GroupNorm(G, C)
    pools each image's channels in G consecutive runs of C/G (LN: G = 1; IN: G = C).
    """
    if isinstance(layer, nn.BatchNorm2d):
        return np.tile(np.arange(c), (n, 1))
    if isinstance(layer, nn.GroupNorm):
        per = c // layer.num_groups
        return np.arange(n)[:, None] * layer.num_groups + np.arange(c)[None, :] // per
    raise TypeError(f"no statistics to explain for {type(layer).__name__}")


def explain(norm: str, x: torch.Tensor, groups: int = GROUPS) -> Explained:
    """Run `x` through the models' `norm` layer in training mode; collect each group's stats."""
    n, c = x.shape[:2]
    layer = make_norm(norm, c, groups, "explain").train()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
        y = layer(x).numpy()
    xs = x.numpy()
    group_of = share_map(layer, n, c)
    found = []
    for g in range(group_of.max() + 1):
        images, channels = np.nonzero(group_of == g)
        inputs = xs[images, channels].ravel()
        found.append(
            Group(
                sorted(set(images.tolist())),
                sorted(set(channels.tolist())),
                inputs,
                float(inputs.mean()),
                float(np.sqrt(inputs.var() + layer.eps)),
                y[images, channels].ravel(),
            )
        )
    return Explained(norm, repr(layer), AXES[norm], layer.eps, xs, y, group_of, found)


def explain_all(x: torch.Tensor = SAMPLE, groups: int = GROUPS) -> list[Explained]:
    return [explain(norm, x, groups) for norm in NORMS]


def span(ids: list[int], word: str) -> str:
    """[0, 1, 2, 3] → 'images 0–3'; [2] → 'image 2'."""
    if len(ids) == 1:
        return f"{word} {ids[0]}"
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"{word}s {ids[0]}–{ids[-1]}"
    return f"{word}s {', '.join(map(str, ids))}"


def members(group: Group) -> str:
    return f"{span(group.images, 'image')}, {span(group.channels, 'channel')}"


def numbers(values: np.ndarray, fmt: str) -> str:
    return " ".join(format(v, fmt) for v in values)


def markdown(results: list[Explained]) -> str:
    """Per norm, a table of its groups: members, inputs, mean, std, normalized values."""
    x = results[0].x
    n, c, h, w = x.shape
    lines = [
        f"# Which elements share one mean/std: a {n}×{c}×{h}×{w} batch through each norm",
        "",
        "Computed by `python -m stages.explain` with the models' own layers "
        "(`normlab.nets.norms.make_norm`, "
        "training mode, scale 1, shift 0). Each group's elements are normalized as "
        "(x − mean) / std with std = sqrt(biased variance + eps), "
        f"eps = {results[0].eps:g}. Values are listed in N, C, H, W order.",
        "",
    ]
    if any(r.norm == "gn" for r in results) and any(r.norm == "in" for r in results):
        gn = next(r for r in results if r.norm == "gn")
        if len(gn.groups) == n * c:
            lines += [
                f"With {c} channels and {len(gn.groups) // n} groups, "
                "GroupNorm has one channel per "
                "group, so here it computes exactly what InstanceNorm does.",
                "",
            ]
    for r in results:
        lines += [
            f"## `{r.norm}`: {r.layer}",
            "",
            f"Statistics: {r.axes}.",
            "",
            "| group | members (all H×W positions) | inputs | mean | std | normalized |",
            "|---|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {i + 1} | {members(g)} | {numbers(g.inputs, 'g')} | {g.mean:.4f} | {g.std:.4f} | "
            f"{numbers(g.normalized, '+.3f')} |"
            for i, g in enumerate(r.groups)
        ]
        lines.append("")
    return "\n".join(lines)


def panel(ax, r: Explained) -> None:
    """Images stacked vertically, channels side by side; each cell 'input → normalized',
    coloured by group."""
    n, c, h, w = r.x.shape
    colours = plt.get_cmap("tab10" if len(r.groups) <= 10 else "tab20")
    grid = np.zeros((n * h, c * w, 4))
    for i in range(n):
        for j in range(c):
            grid[i * h : (i + 1) * h, j * w : (j + 1) * w] = colours(r.group_of[i, j] % colours.N)
            for a in range(h):
                for b in range(w):
                    ax.text(
                        j * w + b,
                        i * h + a,
                        f"{r.x[i, j, a, b]:g}\n→ {r.y[i, j, a, b]:+.2f}",
                        ha="center",
                        va="center",
                        fontsize=7.5,
                    )
    grid[..., 3] = 0.45  # light fill: the printed numbers stay readable
    ax.imshow(grid, aspect="equal")
    for i in range(1, n):
        ax.axhline(i * h - 0.5, color="black", lw=1.5)
    for j in range(1, c):
        ax.axvline(j * w - 0.5, color="black", lw=1.5)
    ax.set_yticks(
        [i * h + (h - 1) / 2 for i in range(n)], [f"image {i}" for i in range(n)], fontsize=8
    )
    ax.set_xticks(
        [j * w + (w - 1) / 2 for j in range(c)], [f"channel {j}" for j in range(c)], fontsize=8
    )
    ax.tick_params(length=0)
    ax.set_title(
        f"{r.norm}: {r.layer.split(', eps')[0]})\n" + textwrap.fill(r.axes, 42), fontsize=8.5
    )
    handles = [
        Patch(
            color=colours(k % colours.N),
            alpha=0.45,
            label=f"{members(g)}: mean {g.mean:.3f}, std {g.std:.3f}",
        )
        for k, g in enumerate(r.groups)
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.03), fontsize=7, frameon=False
    )


def figure(results: list[Explained], path) -> None:
    """One panel per norm; elements of one colour share one mean/std (listed under the panel)."""
    fig, axes = plt.subplots(
        1, len(results), figsize=(4.2 * len(results), 7.8), layout="constrained"
    )
    for ax, r in zip(np.atleast_1d(axes), results, strict=True):
        panel(ax, r)
    fig.suptitle(
        "Which elements share one mean/std (one colour = one group); each cell: input → normalized "
        f"(scale 1, shift 0, eps {results[0].eps:g})",
        fontsize=10,
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
