"""Each v2 test's n (seeds per variant for 80 % power) from the spread of some runs: the pilot's
(seeds 0–2, how studies/claims-v2.yaml's n were registered) or the confirmation's (the n that
would decide a test its seeds left undecided). The rules are the file header's:

- at the write-up's reported difference where it gives one (a pair of `higher` or
  `higher-throughout` both of whose variants have a number in studies/claims.yaml's `reported`,
  the first above the second), one-sided;
- else at the margin, for a direction the larger of "finds a true difference of one margin" and
  "TOST finds equivalence at a true 0" (power.for_direction); `similar`: TOST; `costs`: TOST
  for the range at its centre; `not-worse`: non-inferiority at a true 0;
- a family of k at alpha/k; `higher-throughout` at the largest per-epoch spread of its window;
  `higher-pooled` at the root mean variance of all its arms.

`reaches` has no margin: its n is the issue's (3 fresh seeds), so the pilot sizes nothing; for a
test left undecided it is sized at the distance from the level that its runs show.

v3 (studies/claims-v3.yaml), at the margin: `slope` as a direction (power.for_direction, the
slope's design), `flat` by TOST, `higher-by` one-sided against the margin (its power to support
at a true difference of two margins is its power to contradict at a true 0).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from normlab.analysis.claims import power
from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.measures import log_margin, values

# A study with no pilot borrows the spread of its closest pilot, doubled (the file's header):
# s002-cohort is s002's network, L1 and variants under another recipe.
BORROWED = {"s002-cohort": ("s002", 2.0)}


@dataclass(frozen=True)
class Size:
    n: int | None  # None: more than power.MOST
    sd: float  # the spread it was sized at (the largest of the family's)
    effect: float  # the difference it was sized at (the margin, a reported one …)
    rule: str  # how, in words

    def text(self) -> str:
        return f"{self.n}" if self.n is not None else f"more than {power.MOST}"


def reported_effects(reported: Sequence[Any]) -> dict[tuple[str, str, str], float]:
    """(study, A, B) → A − B of the numbers a write-up reported (claims.yaml `reported`)."""
    acc = {(r.study, r.variant): r.acc for r in reported}
    return {
        (study, a, b): acc[(study, a)] - acc[(study, b)]
        for study, a in acc
        for s2, b in acc
        if s2 == study and a != b
    }


def _pooled_sd(columns: Sequence[np.ndarray]) -> float:
    """Root mean of the arms' variances (ddof 1), per column of 2-D values (epochs): the
    largest column's."""
    variances = np.mean([np.var(c, axis=0, ddof=1) for c in columns], axis=0)
    return float(np.sqrt(np.max(variances)))


def _margin(test: Any) -> float:
    if test.kind in ("steadier", "enriched"):
        return log_margin(test)
    if test.kind == "costs":
        return (test.range[1] - test.range[0]) / 2
    return getattr(test, "margin", math.nan)


def design(test: Any, levels: Mapping[str, float] | None = None) -> power.Design:
    """How the test's se and df follow from n; a line kind's from its variants' x (`levels`:
    variant → log2 batch size)."""
    if test.kind in LINE_KINDS:
        return power.line([(levels or {})[v] for v in test.names])
    if test.kind == "higher-pooled":
        return power.Design(pairs=len(test.units))
    return power.ONE if test.kind in ("reaches", "enriched") else power.TWO


def _unit_n(
    test: Any, sd: float, effect: float | None, alpha: float, target: float, made: power.Design
) -> int | None:
    """n for one pair (or variant, or line) of the test at spread `sd`, design `made`."""
    margin = _margin(test)
    if effect is not None:
        return power.seeds(lambda n: power.one_sided(effect, sd, n, alpha, made), target)
    if test.kind in ("similar", "costs", "flat"):
        return power.seeds(lambda n: power.tost(margin, sd, n, alpha, made), target)
    if test.kind in ("not-worse", "higher-by"):
        return power.seeds(lambda n: power.one_sided(margin, sd, n, alpha, made), target)
    return power.for_direction(margin, sd, alpha, target, made)


def _effect(test: Any, unit: tuple[str, ...], values: Mapping[str, np.ndarray], effects) -> Any:
    """The difference a unit is sized at, when not the margin."""
    if test.kind == "reaches":
        return abs(float(np.mean(values[unit[0]])) - test.level)
    if test.kind in ("higher", "higher-throughout"):
        reported = effects.get((test.study, *unit))
        return reported if reported is not None and reported > 0 else None
    return None


def size(
    test: Any,
    values: Mapping[str, np.ndarray],
    alpha: float,
    target: float,
    effects: Mapping[tuple[str, str, str], float] | None = None,
    widen: float = 1.0,
    levels: Mapping[str, float] | None = None,
) -> Size:
    """n per variant for `test` at the spread of `values` (variant → one value per run, or
    runs × epochs for higher-throughout), each sd multiplied by `widen`; a line kind's x from
    `levels` (variant → log2 batch size)."""
    effects = effects or {}
    units = test.units
    made = design(test, levels)
    if test.kind == "higher-pooled":
        sd = widen * _pooled_sd([values[v] for v in test.names])
        n = _unit_n(test, sd, None, alpha, target, made)
        return Size(n, sd, _margin(test), f"pooled over {len(units)} pairs, at the margin")
    family = alpha / len(units)
    found: list[Size] = []
    for unit in units:
        sd = widen * _pooled_sd([values[v] for v in unit])
        effect = _effect(test, unit, values, effects)
        n = _unit_n(test, sd, effect, family, target, made)
        what = "the margin" if effect is None else f"{effect:.3g}"
        found.append(Size(n, sd, _margin(test) if effect is None else effect, f"at {what}"))
    worst = max(found, key=lambda s: math.inf if s.n is None else s.n)
    rule = f"{worst.rule}, alpha {family:.3g}"
    rule += f" (family of {len(units)})" if len(units) > 1 else ""
    return Size(worst.n, worst.sd, worst.effect, rule)


def pilot(
    test: Any,
    views: Mapping[str, Any],
    seeds: Sequence[int],
    alpha: float,
    target: float,
    effects: Mapping[tuple[str, str, str], float],
) -> Size | None:
    """The n a test gets from the pilot runs (`seeds` of its study, or of the study it borrows
    from): how its registered n was computed. None for `reaches` (its n is the issue's) and
    where the pilot lacks runs."""
    study, widen = BORROWED.get(test.study, (test.study, 1.0))
    view = views.get(study)
    if test.kind == "reaches" or view is None:
        return None
    found = values(test, [r for r in view.runs if r.seed in seeds])
    if any(len(v) < 2 for v in found.values()):
        return None
    return size(test, found, alpha, target, effects, widen)
