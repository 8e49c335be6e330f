"""How a registered (v2, v3) verdict is written: what it measured, on which runs, at which
margin, and the numbers behind its word (normlab.analysis.claims.retest decides the word).

Every line names its metric, study and recipe, seeds, n and margin, so that a reader never has
to open the registration to know what "supported" was a verdict on.
"""

import math
from collections.abc import Sequence
from typing import Any

from normlab.analysis.claims import notation, stats
from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.measures import log_margin


def seed_span(seeds: Sequence[int]) -> str:
    """'3–11', '0–2, 5', '–' (runs of consecutive seeds joined)."""
    ordered = sorted(set(seeds))
    if not ordered:
        return "–"
    spans, start, prev = [], ordered[0], ordered[0]
    for seed in ordered[1:]:
        if seed != prev + 1:
            spans.append((start, prev))
            start = seed
        prev = seed
    spans.append((start, prev))
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in spans)


def metric_text(test: Any) -> str:
    """What one run contributes, in words."""
    kind = test.kind
    if kind in ("higher", "higher-pooled", "not-worse", "similar", "costs", "reaches", "higher-by"):
        return "final test accuracy (last epoch)"
    if kind in LINE_KINDS:
        return "OLS slope of final test error (100 − accuracy) on log2(batch size), a point a run"
    if kind == "higher-throughout":
        return f"test accuracy at every epoch {test.window[0]}–{test.window[1]}"
    if kind == "steadier":
        first, last = test.window
        return f"ln RMS of second differences of {test.series}, epochs {first}–{last}"
    if kind == "learns-faster":
        return f"mean test error over epochs 1–{test.k}"
    if kind == "narrower-gap-abs":
        return "|train − test accuracy| at the last epoch"
    grouping = "the named pairs" if test.classes is not None else "same-superclass pairs"
    return f"ln(share of errors in {grouping} / chance share)"


def margin_text(test: Any) -> str:
    """'±0.1 point', 'a factor of 2 (±0.693 in ln)', 'range [1, 2] points', 'level 99.5 %'."""
    if test.kind == "costs":
        return f"range [{test.range[0]:g}, {test.range[1]:g}] points"
    if test.kind == "reaches":
        return f"level {test.level:g} %"
    if test.kind in ("steadier", "enriched"):
        return f"a factor of {test.margin_ratio:g} (±{log_margin(test):.3f} in ln)"
    per = " per doubling of the batch" if test.kind in LINE_KINDS else ""
    return f"±{test.margin:g} point{'s' if test.margin > 1 else ''}{per}"


def claim_text(test: Any) -> str:
    """What a v3 test claims of its number, spelled out (its margin is not always a band):
    'slope < 0', '|slope| < 0.1', 'gn-bs2 − bn-bs2 > 0.1'; '' for v2's kinds."""
    if test.kind == "slope":
        return "slope < 0"
    if test.kind == "flat":
        return f"|slope| < {test.margin:g}"
    if test.kind == "higher-by":
        return "; ".join(f"{a} − {b} > {test.margin:g}" for a, b in test.units)
    return ""


def unit(test: Any) -> str:
    if test.kind in ("steadier", "enriched"):
        return "in ln"
    if test.kind in LINE_KINDS:
        return "points of error per doubling"
    return "points of error" if test.kind == "learns-faster" else "points"


def not_run(test: Any) -> str:
    """A test registered with `run: false`: never run half, so never decided."""
    return f"not decided: needs n = {test.n} per variant; not run: {test.why_not_run}"


def _p(raw: float, adjusted: float, family: bool) -> str:
    text = f"p = {notation.fmt_p(raw)}"
    return f"{text}, Holm {notation.fmt_p(adjusted)}" if family else text


def _ratio(test: Any, estimate: float) -> str:
    return f" (×{math.exp(estimate):.2f})" if test.kind in ("steadier", "enriched") else ""


def _sizes(test: Any, diff: Any) -> str:
    """'3 vs 3', '3'; '3 per arm' for a pooled test's many arms of one size; a line's runs per
    batch size."""
    if test.kind in LINE_KINDS:
        each = f"{diff.n[0]}" if len(set(diff.n)) == 1 else notation.sizes(diff)
        return f"{each} per batch size"
    if len(diff.n) > 2 and len(set(diff.n)) == 1:
        return f"{diff.n[0]} per arm"
    return notation.sizes(diff)


def detail(test: Any, parts: Sequence[Any]) -> str:
    """Each pair's difference, 95 % CI, and its p for the claim, against it (the 95 % CI misses
    the claim's band) and for equivalence within the margin, Holm-adjusted in a family."""
    family = len(parts) > 1
    keys = ("p_for", "p_against", "p_equal")
    adjusted = [stats.holm([getattr(p, k) for p in parts]) for k in keys]
    digits = 3 if test.kind in ("steadier", "enriched") else 2
    lines = []
    for i, part in enumerate(parts):
        d = part.diff
        notes = "".join(f"; {g.basis()}" for g in part.groups if g.basis())
        head = f"{part.label} = {notation.signed(d.estimate, digits)} {unit(test)}"
        head += _ratio(test, d.estimate)
        if not d.testable:
            lines.append(
                f"{head}, not testable ({notation.untestable(d)}; n = {notation.sizes(d)})"
            )
            continue
        ci = f"95 % CI {notation.signed(d.low, digits)} to {notation.signed(d.high, digits)}"
        ps = [
            f"for the claim {_p(part.p_for, adjusted[0][i], family)}",
            f"against it {_p(part.p_against, adjusted[1][i], family)}",
        ]
        if math.isfinite(part.p_equal):
            ps.append(f"equivalent {_p(part.p_equal, adjusted[2][i], family)}")
        lines.append(f"{head} ({ci}; {'; '.join(ps)}; n = {_sizes(test, d)}){notes}")
    tail = f" — one family, Holm over its {len(parts)} tests" if family else ""
    return "; ".join(lines) + tail
