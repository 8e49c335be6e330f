"""How the report writes numbers: mean ± std, signed differences, p-values, the runs behind a
difference, and what a test could not say (too few runs, no spread, its detectable size).
"""

import math

from normlab.analysis.claims.stats import Diff, Stats


def pm(stats_: Stats, digits: int = 2) -> str:
    """'99.31 ± 0.08' (std over seeds); '99.36' for one run (it has no spread); '–' for none."""
    if not stats_.n:
        return "–"
    if stats_.n == 1:
        return f"{stats_.mean:.{digits}f}"
    return f"{stats_.mean:.{digits}f} ± {stats_.std:.{digits}f}"


def signed(x: float, digits: int = 2) -> str:
    """'+0.03', '-1.20'; never '-0.00' for a difference that rounds to nothing."""
    text = f"{x:+.{digits}f}"
    return text.replace("-", "+") if float(text) == 0 else text


def fmt_p(p: float) -> str:
    return "–" if not math.isfinite(p) else f"{p:.3g}"


def sizes(diff: Diff) -> str:
    """'3 vs 3' (or '3' for a one-sample test): the runs behind a difference."""
    return " vs ".join(str(k) for k in diff.n)


def untestable(diff: Diff) -> str:
    """Why a difference has no p: too few runs, or seeds that all gave the same number."""
    return "fewer than 2 runs" if min(diff.n) < 2 else "no spread between seeds"


def numbers(diff: Diff, p_adj: float, unit: str = "points") -> str:
    """'+0.03 points, 95 % CI −0.13 to +0.19; Welch p = 0.571, Holm p = 1; n = 3 vs 3'."""
    if not math.isfinite(diff.estimate):
        return f"not testable: no runs with numbers on one side; n = {sizes(diff)}"
    if not diff.testable:
        return (
            f"{signed(diff.estimate)} {unit}; not testable: {untestable(diff)}; n = {sizes(diff)}"
        )
    return (
        f"{signed(diff.estimate)} {unit}, 95 % CI {signed(diff.low)} to {signed(diff.high)}; "
        f"p = {fmt_p(diff.p)}, Holm p = {fmt_p(p_adj)}; n = {sizes(diff)}"
    )


def mdd_text(diff: Diff, unit: str = "points") -> str:
    if not math.isfinite(diff.mdd):
        return ""
    return f"the smallest difference n = {sizes(diff)} could detect is {diff.mdd:.2f} {unit}"
