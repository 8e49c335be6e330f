"""What every figure of the report shares: a fixed style, reproducible PNGs, colours, log axes
and the note under a figure that leaves runs out.

What a reader comes for are differences of 0.05–0.3 points between variants that all learned,
so accuracy is drawn as test *error* % on a log scale, fitted to the runs that learned; a run
that did not learn (at chance, or diverged) is never averaged into a line or a band: it is
marked apart (its own panel, or named under the figure). Bands are the min–max range of the
seeds that learned, so no band can cross 0 or 100 %.

Determinism: figures are built on `matplotlib.figure.Figure` (no pyplot, no global state),
under a fixed rc context, and saved without the PNG's 'Software' metadata; no random jitter.
"""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from normlab.analysis.claims.verdicts import Outcome, learned_runs
from normlab.io import atomic_path

STYLE = {"font.size": 9, "axes.titlesize": 10, "svg.hashsalt": "normlab", "path.simplify": False}


@contextmanager
def style() -> Iterator[None]:
    """matplotlib's defaults plus STYLE, whatever a user's matplotlibrc says: same bytes on
    every machine with the pinned matplotlib."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def save(fig: Figure, path: Path) -> None:
    """PNG without 'Software' metadata (matplotlib's version): same inputs, same bytes."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})


def panel_grid(count: int, width: float, height: float) -> tuple[Figure, list]:
    """A figure of `count` panels, at most 4 a row, each `width` × `height` inches, every
    axis off (a panel turns on what it draws; the grid's spare cells stay blank)."""
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat)


def colors(order: Sequence[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10" if len(order) <= 10 else "tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(order)}


def failed_note(runs: Sequence[Outcome]) -> str:
    """'did not learn, not drawn: none s1 stayed at chance (11.35 %)' or ''."""
    bad = [f"{r.label} {r.failure} ({r.final_text()})" for r in runs if r.failure]
    return "did not learn, not drawn: " + "; ".join(bad) if bad else ""


def footnote(fig: Figure, runs: Sequence[Outcome]) -> None:
    """Under a figure that draws `verdicts.usable_runs(runs)`: which runs it leaves out, or that
    none learned."""
    note = failed_note(runs) if learned_runs(runs) else "no run learned: every run is drawn"
    if note:
        fig.text(0.01, -0.01, note, fontsize=8, color="firebrick", va="top", wrap=True)


def log_ticks(low: float, high: float) -> list[float]:
    """Round ticks for a log axis over [low, high]: 1-2-5 per decade, finer when the range is
    under a decade (differences of 0.05 points live there), at least 3 when possible."""
    if not (0 < low < high and math.isfinite(high)):
        return []
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8), tuple(np.arange(1, 10, 0.5))):
        ticks = [round(k * 10.0**d, 12) for d in decades for k in subs]
        ticks = [t for t in ticks if low <= t <= high]
        if len(ticks) >= 3:
            return ticks
    if len(ticks) >= 2:
        return ticks
    return [float(t) for t in MaxNLocator(4).tick_values(low, high) if low <= t <= high]


def log_axis(ax, axis: str = "y") -> None:
    """Log scale with plain-number ticks (0.6, 0.8, 1, 2 …) fitted to what is drawn: call it
    after the data are on the axes."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target, limits = (ax.yaxis, ax.get_ylim()) if axis == "y" else (ax.xaxis, ax.get_xlim())
    ticks = log_ticks(*limits)
    target.set_major_locator(FixedLocator(ticks) if ticks else LogLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def epoch_axis(ax, frame: pd.DataFrame) -> None:
    """Whole epochs only, with half an epoch of room either side (one epoch is one point)."""
    epochs = sorted(frame["epoch"].unique()) if len(frame) else []
    if epochs:
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    few = 0 < len(epochs) <= 12
    ax.xaxis.set_major_locator(FixedLocator(epochs) if few else MaxNLocator(integer=True))


def history_frame(runs: Sequence[Outcome]) -> pd.DataFrame:
    """One row per run and epoch: variant, seed, epoch and every history key."""
    rows = [{"variant": r.variant, "seed": r.seed, **h} for r in runs for h in r.history]
    return pd.DataFrame(rows)
