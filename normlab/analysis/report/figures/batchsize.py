"""Final test error against batch size, per norm: every seed a point, the norms' means a line,
on a log2 batch axis; beside it, optionally, the GroupNorm paper's ImageNet points on an axis of
their own. A study that varies the batch size gets it (`study-batch-size.png`), and so does the
curve that joins several studies' runs (normlab.analysis.report.joined).

Points, not error bars: at 3 seeds a min–max bar hides which seed sits where, and a reader
judging 0.05-point differences needs to see the seeds. Runs that did not learn are never
averaged in (named under the figure, as everywhere in the report)."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

from normlab import config
from normlab.analysis.claims.verdicts import Outcome, usable_runs
from normlab.analysis.report.figures import canvas

# Wu & He (2018), "Group Normalization", Fig. 1 and Table 2: ResNet-50 on ImageNet, top-1
# validation error % at 32 and 2 images per GPU (BN's statistics are per GPU). Another dataset
# and network: drawn on a panel and axis of their own, never on normlab's.
PAPER = {"BN": ((32, 23.6), (2, 34.7)), "GN": ((32, 24.1), (2, 24.1))}
PAPER_COLOURS = {"BN": "bn", "GN": "gn4"}  # the same colour as normlab's norm of that name
PAPER_LABELS = {"BN": (6, -11), "GN": (6, 4)}  # 23.6 and 24.1 at 32 would overlap otherwise
SPREAD = 0.07  # log2 units between the norms' points at one batch size: no point hides another


def label_of(params: Mapping[str, Any]) -> str:
    """'bn', 'gn4', 'ln+l2=0.0002': the norm and whatever else makes a line of its own."""
    return config.variant_name(params["norm"], params["groups"], params["l1"], params["l2"])


def norm_label(run: Outcome) -> str:
    return label_of(run.params)


def batch_of(run: Outcome) -> int:
    return int(run.params["recipe"]["batch_size"])


def batch_sizes(runs: Sequence[Outcome]) -> list[int]:
    return sorted({batch_of(r) for r in runs})


def figure(
    runs: Sequence[Outcome],
    title: str,
    path: Path,
    batches: Sequence[int] = (),
    counts: Mapping[int, str] | None = None,
    paper: bool = False,
) -> Figure:
    """Draw it: the x axis spans `batches` (default: the runs' own), each tick labelled with
    `counts[batch]` under it where given (e.g. 'n=0/9': a batch size still pending shows as
    one); `paper` adds the GroupNorm paper's ImageNet panel on the right."""
    ticks = sorted(set(batches) | set(batch_sizes(runs)))
    labels = list(dict.fromkeys(norm_label(r) for r in runs))
    palette = canvas.colors(labels)
    with canvas.style():
        fig = Figure(figsize=(10.5 if paper else 7.5, 4.8), layout="constrained")
        ratios = {"width_ratios": (2.6, 1)} if paper else {}
        axes = fig.subplots(1, 2 if paper else 1, squeeze=False, gridspec_kw=ratios)[0]
        _seeds_and_means(axes[0], usable_runs(runs), labels, palette)
        names = [f"{b}\n{counts[b]}" if counts and b in counts else str(b) for b in ticks]
        _batch_axis(axes[0], ticks, names)
        axes[0].set(xlabel="batch size (log2)", ylabel="final test error % (log; lower is better)")
        mine = "normlab's runs: " if paper else ""  # the dataset is in the suptitle
        axes[0].set_title(f"{mine}points = seeds, line = their mean")
        if paper:
            _paper_panel(axes[1], palette)
        fig.suptitle(title)
        canvas.footnote(fig, runs)
        canvas.save(fig, path)
    return fig


def _seeds_and_means(ax, good: Sequence[Outcome], labels: Sequence[str], palette: dict) -> None:
    """Each norm's seeds as points (nudged apart along x, never randomly) and their means."""
    drawn = False
    for i, label in enumerate(labels):
        mine = [r for r in good if norm_label(r) == label]
        if not mine:
            continue
        nudge = 2.0 ** ((i - (len(labels) - 1) / 2) * SPREAD)
        sizes = batch_sizes(mine)
        errors = {b: [100 - r.acc for r in mine if batch_of(r) == b] for b in sizes}
        xs = [b * nudge for b in sizes for _ in errors[b]]
        ax.scatter(xs, [e for b in sizes for e in errors[b]], color=palette[label], s=18, alpha=0.7)
        means = [float(np.mean(errors[b])) for b in sizes]
        ax.plot([b * nudge for b in sizes], means, color=palette[label], lw=1.5, label=label)
        drawn = True
    if drawn:
        canvas.log_axis(ax)
        ax.legend(title="norm")
    ax.grid(True, which="major", alpha=0.3)


def _batch_axis(ax, ticks: Sequence[int], names: Sequence[str]) -> None:
    ax.set_xscale("log", base=2)
    if ticks:
        ax.set_xlim(ticks[0] / 1.5, ticks[-1] * 1.5)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.set_xticklabels(names)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _paper_panel(ax, palette: dict) -> None:
    """The paper's points on their own axes (linear error %: 24 to 35 is no 0.5-point
    question), titled as what they are."""
    for name, points in PAPER.items():
        xs, ys = zip(*sorted(points), strict=True)
        colour = palette.get(PAPER_COLOURS[name], "grey")
        ax.plot(xs, ys, ls="--", marker="s", mfc="none", color=colour, label=name)
        for x, y in points:
            shift = PAPER_LABELS[name]
            ax.annotate(f"{y:g}", (x, y), textcoords="offset points", xytext=shift, fontsize=7)
    _batch_axis(ax, [2, 32], ["2", "32"])
    ax.set_ylim(20, 38)
    ax.set(xlabel="images per GPU (log2)", ylabel="top-1 val error % (linear)")
    ax.set_title("another dataset and network:\nImageNet, ResNet-50 (Wu & He 2018)", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
