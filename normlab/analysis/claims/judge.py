"""What the runs say of each claim in studies/claims.yaml (the file's schema: schema.py).

A claim over several pairs (e.g. GN vs BN at batch 16 and at batch 32) is one family:
Holm-adjusted within it, supported only when every pair is.

Verdicts: **supported**, **contradicted**, **not detectable with n = …** (with the smallest
difference this n could have found), or **cannot be tested yet** (planned runs missing).

Kinds, each on one number per run (A, B: the pair's first and second variant):
- higher        A's test accuracy (metric: final | best) above B's (Welch).
- similar       |A − B| within ±margin points (TOST); contradicted when the 95 % CI misses it.
- costs         B − A within [low, high] points (TOST); contradicted when the CI misses it.
- reaches       A's mean accuracy at or above `level` (one-sample t).
- steadier      A's mean |epoch-to-epoch change| of `series` over the `last` N epochs below B's.
- faster        A reaches `level` % test accuracy in fewer epochs than B (a run that never does
                counts as epochs + 1, and is named).
- narrower-gap  A's train − test accuracy gap below B's.
- confusions    the share of A's errors between the named class pairs (either direction) above
                `share` (one-sample t).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from normlab.analysis.claims import notation, stats
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.claims.schema import FILE
from normlab.errors import NormlabError

WORDS = ("supported", "contradicted", "not detectable", "cannot be tested yet")


@dataclass(frozen=True)
class Test:
    """One pair (or variant) of a claim, with p for and against the claim."""

    label: str
    diff: stats.Diff
    p_for: float  # small: the data back the claim
    p_against: float  # small: the data back the opposite
    groups: tuple[vd.VariantRuns, ...]
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Verdict:
    claim: Any  # one of the Claim models
    word: str  # one of WORDS; 'not detectable' carries its n ('not detectable with n = 3 vs 3')
    detail: str  # the numbers behind it


def metric_of(run: vd.Outcome, metric: str) -> float:
    return run.acc if metric == "final" else run.best_acc


def spread(run: vd.Outcome, series: str, last: int) -> float:
    """Mean |change| of `series` between consecutive epochs over the last `last` epochs."""
    values = [h[series] for h in run.history][-last:]
    changes = [abs(b - a) for a, b in pairwise(values)]
    return sum(changes) / len(changes) if changes else math.nan


def epochs_to(run: vd.Outcome, level: float) -> float:
    """First epoch whose test accuracy is ≥ level; epochs + 1 when it never gets there."""
    for h in run.history:
        if h["test/acc"] >= level:
            return float(h["epoch"])
    return float(len(run.history) + 1)


def error_share(run: vd.Outcome, pairs: Sequence[tuple[str, str]]) -> float:
    """Percent of the run's errors that fall between the named class pairs, either direction."""
    index = {name: i for i, name in enumerate(run.classes)}
    for name in (n for pair in pairs for n in pair):
        if name not in index:
            raise NormlabError(
                f"{FILE}: class {name!r} is not a class of {run.dataset} "
                f"(allowed: {', '.join(run.classes)})"
            )
    counts = run.confusion
    errors = sum(map(sum, counts)) - sum(counts[i][i] for i in range(len(counts)))
    between = sum(counts[index[a]][index[b]] + counts[index[b]][index[a]] for a, b in pairs)
    return 100.0 * between / errors if errors else math.nan


def _value(claim: Any) -> tuple[Callable[[vd.Outcome], float], str]:
    """What one run contributes to this kind of claim, and its unit."""
    kind = claim.kind
    if kind in ("higher", "similar", "costs", "reaches"):
        return (lambda r: metric_of(r, claim.metric)), "points"
    if kind == "steadier":
        unit = "points/epoch" if claim.series.endswith("acc") else "loss/epoch"
        return (lambda r: spread(r, claim.series, claim.last)), unit
    if kind == "faster":
        return (lambda r: epochs_to(r, claim.level)), "epochs"
    if kind == "narrower-gap":
        return (lambda r: r.gap), "points"
    return (lambda r: error_share(r, claim.classes)), "points"


def _directional(diff: stats.Diff, want_positive: bool) -> tuple[float, float]:
    """(p for, p against) a claimed sign: the two-sided p counts for the side it falls on."""
    if not diff.testable:
        return math.nan, math.nan
    right_side = (diff.estimate > 0) == want_positive and diff.estimate != 0
    return (diff.p, 1.0) if right_side else (1.0, diff.p)


def _test(
    claim: Any, unit: tuple[str, ...], groups: tuple[vd.VariantRuns, ...], label_unit: str
) -> Test:
    kind = claim.kind
    if len(unit) == 1:
        level = claim.level if kind == "reaches" else 100.0 * claim.share
        diff = stats.one_sample(groups[0].usable, level)
        p_for, p_against = _directional(diff, want_positive=True)
        what = "share of errors in the pairs" if kind == "confusions" else "mean"
        label = f"{unit[0]} {what} − {level:g} %"
        return Test(label, diff, p_for, p_against, groups, label_unit)
    if kind in ("similar", "costs"):
        # similar: A − B within ±margin; costs: B − A within [low, high]
        a, b = (0, 1) if kind == "similar" else (1, 0)
        low, high = (-claim.margin, claim.margin) if kind == "similar" else claim.range
        diff = stats.welch(groups[a].usable, groups[b].usable)
        note = f"within [{low:+g}, {high:+g}] points: TOST"
        return Test(
            f"{unit[a]} − {unit[b]}",
            diff,
            stats.inside(diff, low, high),
            stats.outside(diff, low, high),
            groups,
            label_unit,
            note,
        )
    diff = stats.welch(groups[0].usable, groups[1].usable)
    p_for, p_against = _directional(diff, want_positive=kind == "higher")
    return Test(f"{unit[0]} − {unit[1]}", diff, p_for, p_against, groups, label_unit)


def _lacking(
    claim: Any, runs: dict[str, list[vd.Outcome]], missing: Sequence[tuple[str, int]]
) -> list[str]:
    """Why the claim cannot be tested yet: planned runs without a record, or < 2 runs."""
    lacking = []
    for name in claim.names:
        seeds = [seed for variant, seed in missing if variant == name]
        have = len(runs.get(name, []))
        if seeds:
            lacking.append(f"{name} ({len(seeds)} of {have + len(seeds)} planned)")
        elif have < 2:
            lacking.append(f"{name} ({'1 run, 2 needed' if have else 'no runs'})")
    return lacking


def _never(test: Test, claim: Any) -> str:
    """Runs a 'faster' claim counted as never reaching the level (epochs + 1)."""
    if claim.kind != "faster":
        return ""
    late = [
        r.label for g in test.groups for r in g.runs if epochs_to(r, claim.level) > len(r.history)
    ]
    return (
        f"; never reached {claim.level:g} % (counted as epochs + 1): {', '.join(late)}"
        if late
        else ""
    )


def judge(
    claim: Any,
    runs: Sequence[vd.Outcome],
    missing: Sequence[tuple[str, int]] = (),
    defined: bool = True,
    not_run: str = "",
) -> Verdict:
    """The verdict on one claim from the runs of its study.

    missing: planned runs of the study without a record, as (variant, seed).
    defined: False when no study file defines the claim's study yet.
    not_run: why the study is left out (studies.Study.not_run), said when runs are missing."""
    if not defined:
        return Verdict(claim, WORDS[3], f"study {claim.study} is not defined in a study file yet")
    by_variant: dict[str, list[vd.Outcome]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    lacking = _lacking(claim, by_variant, missing)
    if lacking:
        why = f"{claim.study} is not run ({not_run}); " if not_run else ""
        return Verdict(claim, WORDS[3], f"{why}runs missing in {claim.study}: {', '.join(lacking)}")
    value, unit = _value(claim)
    tests = []
    for names in claim.units:
        groups = tuple(vd.group(v, by_variant[v], [value(r) for r in by_variant[v]]) for v in names)
        tests.append(_test(claim, names, groups, unit))
    return _verdict(claim, tests)


def _digits(unit: str) -> int:
    """Decimals a difference is written with: a loss moves by thousandths from epoch to
    epoch, where 2 decimals would print every difference and CI as 0.00."""
    return 4 if unit.startswith("loss") else 2


def _line(test: Test, p_adj: tuple[float, float], claim: Any) -> str:
    """'A − B = +0.50 points (95 % CI …; p = …, Holm p = …; n = 4 vs 4)', with the runs that
    did not learn. p_adj: the Holm-adjusted (p for, p against)."""
    d = test.diff
    n = notation.sizes(d)
    notes = "".join(f"; {g.basis()}" for g in test.groups if g.basis())
    digits = _digits(test.unit)
    head = f"{test.label} = {notation.signed(d.estimate, digits)} {test.unit}"
    if not d.testable:
        return f"{head}, not testable ({notation.untestable(d)}; n = {n}){notes}"
    if test.note:  # an interval: the TOST for it, the test of lying outside against it
        p = (
            f"{test.note} p = {notation.fmt_p(test.p_for)}, "
            f"Holm p = {notation.fmt_p(p_adj[0])}; outside it: "
            f"p = {notation.fmt_p(test.p_against)}, Holm p = {notation.fmt_p(p_adj[1])}"
        )
    else:
        side = 0 if test.p_for <= test.p_against else 1
        raw = (test.p_for, test.p_against)[side]
        p = f"p = {notation.fmt_p(raw)}, Holm p = {notation.fmt_p(p_adj[side])}"
    ci = f"95 % CI {notation.signed(d.low, digits)} to {notation.signed(d.high, digits)}"
    return f"{head} ({ci}; {p}; n = {n}){_never(test, claim)}{notes}"


def _verdict(claim: Any, tests: list[Test]) -> Verdict:
    """Holm within the claim's family, then: all for → supported; any against → contradicted."""
    adj_for = stats.holm([t.p_for for t in tests])
    adj_against = stats.holm([t.p_against for t in tests])
    adjusted = list(zip(adj_for, adj_against, strict=True))
    detail = "; ".join(_line(t, p, claim) for t, p in zip(tests, adjusted, strict=True))
    if len(tests) > 1:
        detail += f" — one family, Holm over its {len(tests)} tests"
    if all(p < stats.ALPHA for p in adj_for):
        return Verdict(claim, WORDS[0], detail)
    if any(p < stats.ALPHA for p in adj_against):
        return Verdict(claim, WORDS[1], detail)
    ns = sorted({notation.sizes(t.diff) for t in tests})
    mdds = [t.diff.mdd for t in tests if math.isfinite(t.diff.mdd)]
    if mdds and not any(t.note for t in tests):
        unit = tests[0].unit
        detail += f"; smallest difference this n could detect: {max(mdds):.{_digits(unit)}f} {unit}"
    return Verdict(claim, f"{WORDS[2]} with n = {', '.join(ns)}", detail)
