"""What the runs say of each registered test (studies/claims-v2.yaml, studies/claims-v3.yaml), on
exactly its registered seeds.

Records of other seeds are ignored: the pilot (seeds 0–2) sized the tests and is never judged
again by them, and a seed added later for another test cannot move this one. Each pair (or
variant) of a test gives a difference with its CI and three p-values, from normlab.analysis.stats:
for the claim (one-sided, TOST or non-inferiority: `stats.inside` on the claim's band), against
it (its 95 % CI misses the band: `stats.outside`), and for equivalence within ±margin (TOST).
A family is Holm-adjusted. The words:

- **supported**: every pair's adjusted p for the claim < alpha;
- **contradicted**: some pair's 95 % CI lies wholly on the wrong side (adjusted);
- **contradicted: equivalent within ±m**: some pair shows no difference as large as the margin;
- **not decided (needs n = …)**: none of these, with the seeds per variant that would decide it
  at the spread these runs show (normlab.analysis.claims.sizing);
- **waiting for runs (k of n records)** and **not run** (registered with `run: false`).

higher-throughout is an intersection–union test: a pair's p for the claim is its largest over
the window's epochs (each one-sided at alpha, no correction), and the epoch that sets it is the
pair's effect; against it and for equivalence, the window's epochs are Bonferroni-corrected.

v3's kinds, as claims-v3.yaml's header defines them: slope and flat test the OLS slope of final
test error on log2(batch size) through every run of their variants (`stats.slope`), slope for
< 0 (equivalence at ±margin), flat for |slope| < margin (TOST). higher-by tests A − B > margin;
it is contradicted by the upper ONE-sided 95 % bound below the margin (v2's kinds by the
two-sided 95 % CI), and when TOST at ±margin also succeeds it says "equivalent within ±margin".
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sp

from normlab.analysis.claims import lines, sizing, stats
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.measures import levels, log_margin, per_epoch, points, value, values

WORDS = ("supported", "contradicted", "not decided", "waiting for runs", "not run")
# The claim: A's number is lower (slope: the error's slope is below 0, v3's `direction: down`).
LOWER = ("steadier", "learns-faster", "narrower-gap-abs", "slope")
INF = math.inf


@dataclass(frozen=True)
class Part:
    """One pair (or variant) of a test: its difference and p for, against, equal."""

    label: str
    diff: stats.Diff
    p_for: float
    p_against: float
    p_equal: float  # NaN where the kind has no equivalence answer
    groups: tuple[vd.VariantRuns, ...]


@dataclass(frozen=True)
class Judged:
    test: Any
    word: str  # starts with one of WORDS
    detail: str
    parts: tuple[Part, ...] = ()
    seeds: tuple[int, ...] = ()


def band(test: Any) -> tuple[float, float]:
    """Where the claim puts the test's difference (A − B; B − A for costs; mean − level;
    ln enrichment)."""
    if test.kind in ("similar", "flat"):
        return (-test.margin, test.margin)
    if test.kind == "higher-by":
        return (test.margin, INF)
    if test.kind == "costs":
        return tuple(test.range)
    if test.kind == "not-worse":
        return (-test.margin, INF)
    return (-INF, 0.0) if test.kind in LOWER else (0.0, INF)


def margin(test: Any) -> float | None:
    """± the margin of the equivalence answer, on the difference's scale; None: the kind has
    none (its claim is itself an interval or a bound)."""
    if test.kind in ("similar", "flat", "costs", "not-worse", "reaches"):
        return None
    return log_margin(test) if test.kind in ("steadier", "enriched") else test.margin


def _part(test: Any, label: str, diff: stats.Diff, groups: tuple) -> Part:
    low, high = band(test)
    m = margin(test)
    equal = stats.inside(diff, -m, m) if m is not None else math.nan
    if test.kind == "higher-by":  # its header: the upper one-sided 95 % bound below the margin
        against = stats.inside(diff, -INF, low)
    else:
        against = stats.outside(diff, low, high)
    return Part(label, diff, stats.inside(diff, low, high), against, equal, groups)


def _line(test: Any, groups: dict[str, vd.VariantRuns]) -> Part:
    """slope, flat: one line through every usable run of the variants (x: log2 of the run's
    batch size, y: its final test error), each seed a point."""
    runs = [r for v in test.names for r in vd.usable_runs(groups[v].runs)]
    sizes = tuple(len(groups[v].usable) for v in test.names)
    diff = stats.slope(*points(runs), sizes)
    label = "slope over " + ", ".join(test.names)
    return _part(test, label, diff, tuple(groups[v] for v in test.names))


def pooled(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> stats.Diff:
    """The mean over the pairs of mean(A) − mean(B), with its se from every arm and the
    Welch–Satterthwaite df ('tend to': one effect, not every pair on its own)."""
    k = len(pairs)
    arms = [x for pair in pairs for x in pair]
    n = tuple(len(x) for x in arms)
    estimate = float(np.mean([a.mean() - b.mean() for a, b in pairs]))
    if min(n) < 2:
        return stats.Diff(estimate, math.nan, math.nan, math.nan, math.nan, math.nan, n, math.nan)
    shares = [x.var(ddof=1) / len(x) for x in arms]
    se = math.sqrt(sum(shares)) / k
    if se == 0:
        return stats.Diff(estimate, math.nan, math.nan, math.nan, 0.0, math.nan, n, math.nan)
    df = sum(shares) ** 2 / sum(s**2 / (len(x) - 1) for s, x in zip(shares, arms, strict=True))
    half = sp.t.ppf(1 - stats.ALPHA / 2, df) * se
    p = float(2 * sp.t.sf(abs(estimate) / se, df))
    return stats.Diff(estimate, estimate - half, estimate + half, p, se, df, n, math.nan)


def _groups(test: Any, by_variant: dict[str, list[vd.Outcome]]) -> dict[str, vd.VariantRuns]:
    if test.kind == "higher-throughout":  # one number per epoch: the groups name the runs only
        return {v: vd.group(v, runs, [math.nan] * len(runs)) for v, runs in by_variant.items()}
    made = {}
    for v, runs in by_variant.items():
        made[v] = vd.group(v, runs, [value(test, r) if r.measured else math.nan for r in runs])
    return made


def _throughout(test: Any, unit: tuple[str, str], groups: dict) -> Part:
    a, b = (groups[v] for v in unit)
    rows = [np.array([per_epoch(test, r) for r in vd.usable_runs(g.runs)]) for g in (a, b)]
    epochs = range(test.window[0], test.window[1] + 1)
    parts = [
        _part(test, "", stats.welch(rows[0][:, i], rows[1][:, i]), (a, b))
        for i in range(len(epochs))
    ]
    i = max(range(len(parts)), key=lambda j: parts[j].p_for)  # the epoch that decides
    against = min(1.0, len(parts) * min(p.p_against for p in parts))
    equal = min(1.0, len(parts) * min(p.p_equal for p in parts))
    label = f"{unit[0]} − {unit[1]} at epoch {epochs[i]} (the weakest of {epochs[0]}–{epochs[-1]})"
    return Part(label, parts[i].diff, parts[i].p_for, against, equal, (a, b))


def parts(test: Any, runs: Sequence[vd.Outcome]) -> list[Part]:
    """The test's pairs (or variants), each with its difference and p-values."""
    by_variant = {v: [r for r in runs if r.variant == v] for v in test.names}
    groups = _groups(test, by_variant)
    if test.kind in LINE_KINDS:
        return [_line(test, groups)]
    if test.kind == "higher-pooled":
        arms = [(groups[a].usable, groups[b].usable) for a, b in test.units]
        label = "mean of " + ", ".join(f"({a} − {b})" for a, b in test.units)
        return [_part(test, label, pooled(arms), tuple(groups.values()))]
    found = []
    for unit in test.units:
        g = tuple(groups[v] for v in unit)
        if test.kind == "higher-throughout":
            found.append(_throughout(test, unit, groups))
        elif len(unit) == 1:
            level = test.level if test.kind == "reaches" else 0.0
            what = f"mean − {level:g} %" if test.kind == "reaches" else "ln(share / chance)"
            found.append(_part(test, f"{unit[0]} {what}", stats.one_sample(g[0].usable, level), g))
        else:
            a, b = (1, 0) if test.kind == "costs" else (0, 1)
            diff = stats.welch(g[a].usable, g[b].usable)
            found.append(_part(test, f"{unit[a]} − {unit[b]}", diff, (g[a], g[b])))
    return found


def _waiting(test: Any, runs: Sequence[vd.Outcome], seeds: Sequence[int]) -> str:
    """'' when every (variant, seed) has a record, else why the test waits."""
    have = {(r.variant, r.seed) for r in runs}
    needed = len(test.names) * len(seeds)
    if len(have) < needed:
        return f"{WORDS[3]} ({len(have)} of {needed} records)"
    return ""


def judge(
    test: Any, view: Any | None, alpha: float, target: float, effects: dict | None = None
) -> Judged:
    """The verdict on one test, on exactly its registered seeds."""
    if not test.run:
        return Judged(test, WORDS[4], lines.not_run(test), seeds=tuple(test.seeds))
    return on_seeds(test, view, test.seeds, alpha, target, effects)


def on_seeds(
    test: Any,
    view: Any | None,
    seeds: Sequence[int],
    alpha: float,
    target: float,
    effects: dict | None = None,
) -> Judged:
    """What the test says on the runs of `seeds` (its own; or the pilot's, for comparison)."""
    seeds = tuple(seeds)
    if view is None:
        return Judged(test, f"{WORDS[3]} (study {test.study} is not defined yet)", "", (), seeds)
    runs = [r for r in view.runs if r.seed in seeds and r.variant in test.names]
    waiting = _waiting(test, runs, seeds)
    if waiting:
        return Judged(test, waiting, "", (), seeds)
    found = parts(test, runs)
    word = decide(test, found, alpha)
    if word == WORDS[2] and all(p.diff.testable for p in found):
        x = levels(test, runs)
        need = sizing.size(test, values(test, runs), alpha, target, effects, levels=x)
        word = f"{WORDS[2]} (needs n = {need.text()} per variant)"
    return Judged(test, word, lines.detail(test, found), tuple(found), seeds)


def decide(test: Any, found: Sequence[Part], alpha: float) -> str:
    """Holm within the family, then the first word that holds (module docstring); higher-by
    names a contradiction that TOST also finds by its equivalence, as its header says."""
    if any(not p.diff.testable for p in found):
        return WORDS[2]
    if all(p < alpha for p in stats.holm([p.p_for for p in found])):
        return WORDS[0]
    against = any(p < alpha for p in stats.holm([p.p_against for p in found]))
    m = margin(test)
    equal = m is not None and any(p < alpha for p in stats.holm([p.p_equal for p in found]))
    if against and not (equal and test.kind == "higher-by"):
        return WORDS[1]
    if equal:
        return f"{WORDS[1]}: equivalent within {lines.margin_text(test)}"
    return WORDS[2]
