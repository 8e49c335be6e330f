"""The one number each run gives a v2 test (studies/claims-v2.yaml's kinds), from its record.

Each measure fixes a defect of its version-1 counterpart (normlab.analysis.claims):
- wobble: RMS of second differences over a registered window, so a curve that rises or falls
  steadily has none (v1's mean |epoch-to-epoch change| counted the trend as unsteadiness, and
  read the last epochs, where 001's and 002's schedules had already flattened every run);
- early error: mean test error over the first k epochs (v1: the first epoch at a chosen level,
  a coarse integer);
- |gap|: the size of the train − test gap (v1 compared the signed gap, and the gaps are
  negative: a wider gap counted as narrower);
- enrichment: the share of errors between named classes over the share chance would give them
  (v1 asked the share itself to pass 50 %, which even the most-confused pairs never approach).

v3's line kinds (slope, flat) read each run's final test error at x = log2 of its batch size,
both from its record (the batch size its params say it trained at, not the variant's name).
"""

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.registered import FILE
from normlab.analysis.claims.verdicts import Outcome, usable_runs
from normlab.errors import NormlabError

ACCURACY_KINDS = (
    "higher",
    "higher-pooled",
    "not-worse",
    "similar",
    "costs",
    "reaches",
    "higher-by",
)


def log_margin(test: Any) -> float:
    """The margin of a ratio kind (wobble, enrichment) on the log scale its numbers are on."""
    return math.log(test.margin_ratio)


def curve(run: Outcome, series: str, window: Sequence[int]) -> np.ndarray:
    """`series` at the epochs first..last of `window` (1-based, both included)."""
    by_epoch = {int(h["epoch"]): h for h in run.history}
    return np.array([by_epoch[e][series] for e in range(window[0], window[1] + 1)], dtype=float)


def wobble(run: Outcome, series: str, window: Sequence[int]) -> float:
    """RMS of y[t+1] − 2·y[t] + y[t−1] for the epochs t whose neighbours are both in `window`:
    zero for a straight line, however steep; what is left is the zigzag a plot shows."""
    second = np.diff(curve(run, series, window), 2)
    return float(np.sqrt(np.mean(second**2)))


def early_error(run: Outcome, k: int) -> float:
    """Mean test error (100 − accuracy, points) over epochs 1..k: how fast a run learned."""
    return float(np.mean(100.0 - curve(run, "test/acc", (1, k))))


def linked(test: Any, classes: Sequence[str]) -> set[tuple[int, int]]:
    """(actual, predicted) index pairs whose errors the test counts: either direction of a named
    pair, or two different classes of one superclass."""
    index = {name: i for i, name in enumerate(classes)}
    for name in test.named:
        if name not in index:
            raise NormlabError(
                f"{FILE}: claim {test.id}: class {name!r} is not a class of this dataset "
                f"(allowed: {', '.join(classes)})"
            )
    if test.classes is not None:
        return {(index[a], index[b]) for pair in test.classes for a, b in (pair, pair[::-1])}
    groups = test.superclasses
    return {(index[a], index[b]) for group in groups for a in group for b in group if a != b}


def enrichment(run: Outcome, pairs: set[tuple[int, int]]) -> tuple[float, float]:
    """(observed share, chance share) of the run's errors in `pairs`. Chance: each actual class's
    errors spread evenly over the other classes, so a class with more errors weighs more."""
    counts = np.array(run.confusion, dtype=float)
    np.fill_diagonal(counts, 0.0)
    errors = counts.sum()
    if not errors:
        return math.nan, math.nan
    observed = sum(counts[i, j] for i, j in pairs) / errors
    # each actual class i: its errors × the share of the other classes its pairs name
    targets = np.bincount([i for i, _ in pairs], minlength=len(counts)) / (len(counts) - 1)
    chance = float(counts.sum(axis=1) @ targets)
    return float(observed), chance / errors


def error(run: Outcome) -> float:
    """Final test error in points: 100 − final test accuracy."""
    return 100.0 - run.acc


def log2_batch(run: Outcome) -> float:
    """x of a line kind: log2 of the batch size the run's record says it trained at."""
    return math.log2(run.params["recipe"]["batch_size"])


def points(runs: Sequence[Outcome]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a line kind: log2 batch size and final test error, a point per run."""
    return (
        np.array([log2_batch(r) for r in runs], dtype=float),
        np.array([error(r) for r in runs], dtype=float),
    )


def levels(test: Any, runs: Sequence[Outcome]) -> dict[str, float]:
    """variant → its x (log2 batch size), from its first run with a record."""
    found = {}
    for v in test.names:
        mine = [r for r in runs if r.variant == v]
        if mine:
            found[v] = log2_batch(mine[0])
    return found


def value(test: Any, run: Outcome) -> float:
    """The run's number for a test of any kind but higher-throughout (see `per_epoch`)."""
    kind = test.kind
    if kind in ACCURACY_KINDS:
        return run.acc
    if kind in LINE_KINDS:
        return error(run)
    if kind == "steadier":
        return math.log(wobble(run, test.series, test.window))
    if kind == "learns-faster":
        return early_error(run, test.k)
    if kind == "narrower-gap-abs":
        return abs(run.gap)
    if kind == "enriched":
        observed, chance = enrichment(run, linked(test, run.classes))
        return math.log(observed / chance) if observed > 0 else -math.inf
    raise ValueError(f"no single number per run for kind {kind!r}")


def per_epoch(test: Any, run: Outcome) -> np.ndarray:
    """Test accuracy at each epoch of a higher-throughout test's window."""
    return curve(run, "test/acc", test.window)


def values(test: Any, runs: Sequence[Outcome]) -> dict[str, np.ndarray]:
    """variant → its runs' numbers (runs × epochs for higher-throughout), runs that learned."""
    found = {}
    for v in test.names:
        usable = usable_runs([r for r in runs if r.variant == v])
        if test.kind == "higher-throughout":
            found[v] = np.array([per_epoch(test, r) for r in usable])
        else:
            found[v] = np.array([value(test, r) for r in usable])
    return found
