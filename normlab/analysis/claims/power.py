"""Seeds per variant for 80 % power, as studies/claims-v2.yaml's header defines it.

Why these formulas: every v2 test is a t-test on one number per run (or a pooled mean of such
differences), so its power at a true difference δ is that of a noncentral t with noncentrality
δ / se. statsmodels' `TTestPower.power` computes exactly that for any degrees of freedom, so it
does the arithmetic here; what this module adds is each design's se and df:

- two variants, n seeds each:           se = sd·√(2/n),       df = 2(n − 1)
- one variant against a fixed level:    se = sd/√n,           df = n − 1
- the mean of k pair differences:       se = sd·√(2/(k·n)),   df = 2k(n − 1)
  (equal spreads: Welch–Satterthwaite's df is then exactly the pooled one)
- a slope over k batch sizes x, n each:  se = sd/√(n·Σ(x − x̄)²), df = k·n − 2
  (v3: x = log2 of each batch size; the regression's residual sd is the seeds' spread)

TOST (equivalence within ±h) needs both one-sided tests to reject; its power by the Phillips
approximation is P(lower rejects) + P(upper rejects) − 1, floored at 0. A family of k pairs is
sized at alpha/k (Holm's first step), and no test at fewer than 3 seeds: with 2 a seed spread
has one degree of freedom and a single odd seed decides the verdict.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statsmodels.stats.power import TTestPower

LEAST = 3  # seeds per variant, whatever the power says
MOST = 1000  # beyond this a test is "more than 1000": no budget comes near it
_T = TTestPower()


@dataclass(frozen=True)
class Design:
    """How a test's standard error and degrees of freedom follow from n seeds per variant."""

    arms: int = 2  # 1: a variant against a level; 2: two variants; a slope: its batch sizes
    pairs: int = 1  # the pooled mean of this many pair differences (two arms each)
    sxx: float | None = None  # a slope: Σ(x − x̄)² over its arms' x (one x per arm)

    def factor(self) -> float:
        """se · √n / sd."""
        if self.sxx is not None:
            return 1 / math.sqrt(self.sxx)
        return math.sqrt(2 / self.pairs) if self.arms == 2 else 1.0

    def df(self, n: int) -> float:
        if self.sxx is not None:
            return float(self.arms * n - 2)
        return float(2 * self.pairs * (n - 1) if self.arms == 2 else n - 1)


def line(levels: Sequence[float]) -> Design:
    """The design of a slope over one arm per x (`levels`: log2 of each batch size)."""
    mean = sum(levels) / len(levels)
    sxx = sum((x - mean) ** 2 for x in levels)
    if sxx <= 0:
        raise ValueError(f"a slope needs two x values or more, not {list(levels)}")
    return Design(arms=len(levels), sxx=sxx)


TWO = Design()
ONE = Design(arms=1)


def _reject(effect: float, sd: float, n: int, alpha: float, design: Design, side: str) -> float:
    """P(the one-sided t-test at `alpha` rejects toward `side`) at a true shift `effect` (in
    the test's units) from the null value."""
    if sd == 0:
        return 1.0 if (effect > 0) == (side == "larger") and effect != 0 else 0.0
    d = effect / (sd * design.factor())  # so that the noncentrality is d·√n
    return float(_T.power(effect_size=d, nobs=n, alpha=alpha, df=design.df(n), alternative=side))


def one_sided(effect: float, sd: float, n: int, alpha: float, design: Design = TWO) -> float:
    """Power of the one-sided test of 'difference > 0' when the true difference is `effect`
    (a non-inferiority test at margin m: `effect` = m when the true difference is 0)."""
    return _reject(effect, sd, n, alpha, design, "larger")


def tost(
    half_width: float, sd: float, n: int, alpha: float, design: Design = TWO, true: float = 0.0
) -> float:
    """Power of TOST for |difference| < half_width at a true difference `true` (Phillips)."""
    lower = _reject(true + half_width, sd, n, alpha, design, "larger")
    upper = _reject(true - half_width, sd, n, alpha, design, "smaller")
    return max(0.0, lower + upper - 1.0)


def seeds(power_at: Callable[[int], float], target: float, least: int = LEAST) -> int | None:
    """The smallest n ≥ least whose power reaches `target`; None when not even MOST does.

    Power grows with n for every design here, so a bisection finds the first n."""
    if power_at(least) >= target:
        return least
    if power_at(MOST) < target:
        return None
    low, high = least, MOST  # power_at(low) < target ≤ power_at(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power_at(mid) >= target else (mid, high)
    return high


def for_direction(
    margin: float, sd: float, alpha: float, target: float, design: Design = TWO
) -> int | None:
    """n for a directional claim sized at its margin: the larger of the n that finds a true
    difference of one margin and the n whose TOST finds equivalence at a true 0 (so that
    either answer, "it differs" or "no difference larger than the margin", can come out)."""
    found = seeds(lambda n: one_sided(margin, sd, n, alpha, design), target)
    equal = seeds(lambda n: tost(margin, sd, n, alpha, design), target)
    return None if found is None or equal is None else max(found, equal)
