"""The forest plot of the Summary: every registered test's effect with its CI against its
margin, the pilot (v2: seeds 0–2, the test computed on them for comparison) beside the
confirmation. A test with no record yet has its row and verdict, and nothing drawn.

Effects are in margins, so that tests of accuracy, wobble, early error, enrichment and slopes
share one axis, and turned so that positive is the claim's direction: a directional claim
(v3's `slope` too: error falling with the batch) is supported right of 0, equivalent inside
±1; `similar`, `flat` and `costs` (centred on its range) claim the band ±1 itself; `not-worse`
claims right of −1, `higher-by` right of +1. `reaches` has no margin: it is drawn in units of
MNIST's accuracy margin (0.1 point), from its level. The thick bar is the 90 % CI (one-sided
tests and TOST at 5 % decide on it), the thin one the 95 % CI (a contradiction).
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter
from scipy import stats as sp

from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.measures import log_margin
from normlab.analysis.claims.retest import LOWER, Judged
from normlab.analysis.report.figures import canvas

REACHES_UNIT = 0.1  # points: MNIST's accuracy margin (studies/claims-v2.yaml's header)
LIMIT = 50.0  # margins: drawn at the edge beyond this (a CI of three seeds can be that wide)
TICKS = [-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50]


def scale(test: Any) -> tuple[float, float, float]:
    """(centre, unit, sign): a difference d is drawn at sign · (d − centre) / unit."""
    if test.kind == "costs":
        low, high = test.range
        return (low + high) / 2, (high - low) / 2, 1.0
    if test.kind == "reaches":
        return 0.0, REACHES_UNIT, 1.0
    unit = log_margin(test) if test.kind in ("steadier", "enriched") else test.margin
    return 0.0, unit, -1.0 if test.kind in LOWER else 1.0


def interval(test: Any, diff: Any, level: float) -> tuple[float, float, float]:
    """(effect, low, high) in margins, the claim's direction positive; CI at `level`."""
    centre, unit, sign = scale(test)
    if not diff.testable:
        return math.nan, math.nan, math.nan
    half = sp.t.ppf(0.5 + level / 2, diff.df) * diff.se
    ends = sorted(sign * (diff.estimate + h - centre) / unit for h in (-half, half))
    return sign * (diff.estimate - centre) / unit, ends[0], ends[1]


def _clip(x: float) -> float:
    return max(-LIMIT, min(LIMIT, x))


def _draw(ax, y: float, test: Any, diff: Any, color: str) -> None:
    effect, low, high = interval(test, diff, 0.95)
    if not math.isfinite(effect):
        return
    _, low90, high90 = interval(test, diff, 0.90)
    ax.plot([_clip(low), _clip(high)], [y, y], color=color, lw=0.8)
    ax.plot([_clip(low90), _clip(high90)], [y, y], color=color, lw=2.6)
    ax.plot([_clip(effect)], [y], "o", color=color, ms=4, mec="white", mew=0.5)


def labels(test: Any) -> list[str]:
    """A y label per drawn effect: the pair as its difference is taken, or the variant."""
    if test.kind == "higher-pooled":
        return ["mean of its pairs"]
    if test.kind in LINE_KINDS:
        return ["slope over " + ", ".join(test.names)]
    order = (lambda u: u[::-1]) if test.kind == "costs" else (lambda u: u)
    return [" − ".join(order(unit)) for unit in test.units]


def rows(tests: Sequence[tuple[Judged, Judged | None]]) -> list[tuple[str, Any, Any, Any]]:
    """(label, test, confirmation diff or None, pilot diff or None), one per pair or variant."""
    found = []
    for verdict, pilot in tests:
        test = verdict.test
        for i, label in enumerate(labels(test)):
            mine = verdict.parts[i].diff if verdict.parts else None
            theirs = pilot.parts[i].diff if pilot and pilot.parts else None
            found.append((f"{test.id}: {label}", test, mine, theirs))
    return found


def _words(ax, drawn: list, tests: Sequence[tuple[Judged, Judged | None]]) -> None:
    """Each test's verdict, right of its first row."""
    words = {v.test.id: v.word for v, _ in tests}
    for y, (_, test, _, _) in enumerate(drawn):
        if y == 0 or drawn[y - 1][1] is not test:
            ax.text(1.01, y, words[test.id], transform=ax.get_yaxis_transform(), fontsize=7)


def _axes(ax, drawn: list) -> None:
    """0 and ±1 margin, a symlog axis (±2 linear, so the margins read plainly), the labels."""
    for x, style in ((0, "-"), (-1, "--"), (1, "--")):
        ax.axvline(x, color="0.3", lw=0.7, ls=style)
    ax.set_xscale("symlog", linthresh=2, linscale=1.5)
    ax.set_xlim(-LIMIT * 1.1, LIMIT * 1.1)
    ax.xaxis.set_major_locator(FixedLocator(TICKS))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yticks(range(len(drawn)), [label for label, *_ in drawn], fontsize=7)
    ax.set_ylim(len(drawn) - 0.5, -0.5)
    ax.set_xlabel("effect in margins (positive: the claim's direction)")


def forest(tests: Sequence[tuple[Judged, Judged | None]], path: Path) -> Figure:
    """Draw every test's effect (confirmation, and the pilot below it) into `path`."""
    drawn = rows(tests)
    with canvas.style():
        fig = Figure(figsize=(9, 0.9 + 0.26 * len(drawn)))
        ax = fig.subplots()
        for y, (_, test, mine, theirs) in enumerate(drawn):
            if mine is not None:  # the y axis runs downwards: − is above
                _draw(ax, y - 0.17, test, mine, "tab:blue")
            if theirs is not None:
                _draw(ax, y + 0.17, test, theirs, "0.6")
        _words(ax, drawn, tests)
        _axes(ax, drawn)
        ax.set_title(
            "registered tests: confirmation (blue, registered seeds) above, v2's pilot (grey, "
            "seeds 0–2) below; 90 % CI thick, 95 % thin",
            fontsize=9,
        )
        canvas.save(fig, path)
    return fig
