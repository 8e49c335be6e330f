"""What a v3 test's n buys. studies/claims-v3.yaml fixes n = 3 by the budget, not by power, and
its header asks for the power that gives and the n that 80 % would need, shown beside the test,
so that a "not decided" reads as what it is. Both at the seed spread of each variant's own norm
in the `batch` study at batch 16 (its smallest batch size with records, the nearest to 2–8), by
sizing's rules for the kind (normlab.analysis.claims.sizing).

What each power is of, at the margin m: `slope` (a direction) finding a true slope of −m, and
TOST finding |slope| < m at a true 0 (its n: the larger, as power.for_direction); `flat` TOST at
a true 0; `higher-by` finding A − B > m at a true 2m, which is also its power to contradict the
claim at a true 0 (the one-sided test at m, either way).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from normlab.analysis.claims import power, sizing
from normlab.analysis.claims.measures import value
from normlab.analysis.claims.verdicts import usable_runs

# A v3 study → (study file key, study, batch size) whose seeds' spread sizes its tests.
SPREAD_FROM = {"small-batch": ("default", "batch", 16)}


@dataclass(frozen=True)
class Budget:
    """The n that `target` power needs, and what the registered n finds with what power."""

    size: sizing.Size
    power: tuple[tuple[str, float], ...]  # (what it finds, its power at the registered n)
    source: str  # where the spread is from, in words
    target: float  # the power `size` is for (the registration's, 0.8)


def sources(test: Any) -> list[tuple[str, str]]:
    """(study file key, study) of the spread a test's power is computed at; [] for none."""
    found = SPREAD_FROM.get(test.study)
    return [(found[0], found[1])] if found else []


def _spread(test: Any, mine: Any, theirs: Any, batch: int) -> dict[str, np.ndarray] | None:
    """variant → the numbers (the test's metric) of the runs of its norm at `batch` in the
    spread's study; None where a variant's plan or two such runs are missing."""
    found = {}
    for v in test.names:
        if v not in mine.params:
            return None
        norm = mine.params[v]["norm"]
        runs = [
            r
            for r in theirs.runs
            if r.params["norm"] == norm and r.params["recipe"]["batch_size"] == batch
        ]
        found[v] = np.array([value(test, r) for r in usable_runs(runs)], dtype=float)
        if len(found[v]) < 2:
            return None
    return found


def powers(test: Any, sd: float, n: int, alpha: float, made: power.Design) -> tuple:
    """What n seeds per variant find, with what power (module docstring), at spread `sd`."""
    m = test.margin
    equal = (f"for TOST within ±{m:g} at a true slope of 0", power.tost(m, sd, n, alpha, made))
    if test.kind == "flat":
        return (equal,)
    if test.kind == "higher-by":
        found = f"to find a true difference of {2 * m:g} (and to contradict at a true 0)"
        return ((found, power.one_sided(m, sd, n, alpha, made)),)
    return ((f"to find a true slope of −{m:g}", power.one_sided(m, sd, n, alpha, made)), equal)


def budget(test: Any, views: Mapping[str, Any], alpha: float, target: float) -> Budget | None:
    """A v3 test's power at its registered n and the n for `target`, at SPREAD_FROM's spread;
    None where the test's study has none or its runs are missing."""
    if test.study not in SPREAD_FROM:
        return None
    _, study, batch = SPREAD_FROM[test.study]
    mine, theirs = views.get(test.study), views.get(study)
    found = _spread(test, mine, theirs, batch) if mine and theirs else None
    if found is None:
        return None
    levels = {v: math.log2(mine.params[v]["recipe"]["batch_size"]) for v in test.names}
    need = sizing.size(test, found, alpha, target, levels=levels)
    family = alpha / len(test.units)
    made = sizing.design(test, levels)
    where = f"the seed spread of its norm in study `{study}` at batch {batch}"
    return Budget(need, powers(test, need.sd, test.n, family, made), where, target)
