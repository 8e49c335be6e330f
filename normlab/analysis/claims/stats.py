"""The statistics behind every verdict: Welch's t, Holm, TOST, and the minimum detectable
difference. Plain numbers in, numbers out; what they are called is
normlab.analysis.claims.verdicts'.

Why these and not a bare p-value per pair:
- A study compares several pairs at once; at p < 0.05 one in twenty unrelated pairs "differs".
  Holm's step-down adjustment keeps the chance of any false "differs" in a family under 5 %,
  and the verdict word follows the adjusted p. The raw p stays beside it.
- "Not detectable" is not "equal": with three seeds only a difference of a few seed spreads
  shows. Each such verdict states the smallest difference this many seeds could have found
  (80 % power, two-sided 5 %), and equivalence is tested directly with TOST.

Minimum detectable difference, t approximation (no noncentral t, no statsmodels):
    δ = (t(1 − α/2, ν) + t(power, ν)) · s_p · √(1/n_a + 1/n_b),  ν = n_a + n_b − 2,
with s_p the pooled standard deviation of the two groups' seeds.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.80
MDD_RULE = (
    "80 % power, two-sided 5 %, t approximation (t₀.₉₇₅ + t₀.₈₀) · pooled seed sd · √(1/nA + 1/nB)"
)


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    std: float  # sample std (ddof 1); 0 for one run
    median: float
    low: float
    high: float


def describe(values: Sequence[float]) -> Stats:
    x = np.asarray(values, dtype=float)
    if not len(x):
        return Stats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return Stats(len(x), float(x.mean()), std, float(np.median(x)), float(x.min()), float(x.max()))


@dataclass(frozen=True)
class Diff:
    """An estimate with its 95 % CI and two-sided p (H0: estimate = 0); NaN where untestable."""

    estimate: float  # mean(a) − mean(b), or mean − level
    low: float
    high: float
    p: float
    se: float
    df: float
    n: tuple[int, ...]
    mdd: float  # smallest |estimate| detectable at this n (see MDD_RULE)

    @property
    def testable(self) -> bool:
        return math.isfinite(self.p)


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    dof = len(a) + len(b) - 2
    return math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / dof)


def min_detectable(sd: float, n_a: int, n_b: int | None = None) -> float:
    """Smallest true difference found with POWER at two-sided ALPHA (MDD_RULE); one-sample
    when n_b is None."""
    dof = n_a - 1 if n_b is None else n_a + n_b - 2
    if dof < 1 or not math.isfinite(sd):
        return math.nan
    scale = math.sqrt(1 / n_a) if n_b is None else math.sqrt(1 / n_a + 1 / n_b)
    return float((stats.t.ppf(1 - ALPHA / 2, dof) + stats.t.ppf(POWER, dof)) * sd * scale)


def welch(a: Sequence[float], b: Sequence[float]) -> Diff:
    """Welch's t-test of mean(a) − mean(b), its 95 % CI, and the minimum detectable difference."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = (len(a), len(b))
    estimate = float(a.mean() - b.mean()) if min(n) else math.nan
    if min(n) < 2:
        return Diff(estimate, math.nan, math.nan, math.nan, math.nan, math.nan, n, math.nan)
    var_a, var_b = a.var(ddof=1) / n[0], b.var(ddof=1) / n[1]
    se = math.sqrt(var_a + var_b)
    mdd = min_detectable(_pooled_sd(a, b), *n)
    if se == 0:
        return Diff(estimate, math.nan, math.nan, math.nan, 0.0, math.nan, n, mdd)
    df = float((var_a + var_b) ** 2 / (var_a**2 / (n[0] - 1) + var_b**2 / (n[1] - 1)))
    with warnings.catch_warnings():  # near-identical seeds: scipy's precision note, not ours
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(1 - ALPHA)
    return Diff(estimate, float(ci.low), float(ci.high), float(result.pvalue), se, df, n, mdd)


def one_sample(x: Sequence[float], level: float) -> Diff:
    """mean(x) − level with its 95 % CI and the one-sample t-test's two-sided p."""
    x = np.asarray(x, dtype=float)
    n = (len(x),)
    estimate = float(x.mean() - level) if len(x) else math.nan
    if len(x) < 2:
        return Diff(estimate, math.nan, math.nan, math.nan, math.nan, math.nan, n, math.nan)
    sd = float(x.std(ddof=1))
    se, df = sd / math.sqrt(len(x)), len(x) - 1
    if se == 0:
        return Diff(estimate, math.nan, math.nan, math.nan, 0.0, df, n, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_1samp(x, level)
    ci = result.confidence_interval(1 - ALPHA)
    low, high = float(ci.low) - level, float(ci.high) - level
    return Diff(estimate, low, high, float(result.pvalue), se, df, n, min_detectable(sd, len(x)))


def slope(x: Sequence[float], y: Sequence[float], n: tuple[int, ...]) -> Diff:
    """The OLS slope of y on x (scipy's linregress: its stderr, df = points − 2), its 95 % CI
    and two-sided p, so that a slope goes through the same TOST and one-sided tests as a
    difference; `n` is the runs behind each x. Untestable (NaN p) with fewer than 3 points,
    one x only, or points exactly on a line."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    nan = math.nan
    if len(set(x.tolist())) < 2:
        return Diff(nan, nan, nan, nan, nan, nan, n, nan)
    with warnings.catch_warnings():  # two points, or a perfect fit: scipy's note, not ours
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = stats.linregress(x, y)
    df = len(x) - 2
    if df < 1 or fit.stderr == 0:
        se = 0.0 if df >= 1 else nan
        return Diff(float(fit.slope), nan, nan, nan, se, float(df), n, nan)
    half = float(stats.t.ppf(1 - ALPHA / 2, df) * fit.stderr)
    mdd = float((stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * fit.stderr)
    estimate, se = float(fit.slope), float(fit.stderr)
    return Diff(estimate, estimate - half, estimate + half, float(fit.pvalue), se, df, n, mdd)


def inside(diff: Diff, low: float, high: float) -> float:
    """TOST: p of 'the true estimate lies within (low, high)' — the larger of two one-sided
    t-tests at the Welch (or one-sample) se and df. Below ALPHA ⇔ the 90 % CI is inside."""
    if not diff.testable:
        return math.nan
    above = stats.t.sf((diff.estimate - low) / diff.se, diff.df)
    below = stats.t.cdf((diff.estimate - high) / diff.se, diff.df)
    return float(max(above, below))


def outside(diff: Diff, low: float, high: float) -> float:
    """p of 'the true estimate lies outside [low, high]': the one-sided test on the side the
    estimate falls, doubled (two sides looked at). Below ALPHA ⇔ the 95 % CI misses the band."""
    if not diff.testable or low <= diff.estimate <= high:
        return math.nan if not diff.testable else 1.0
    edge = high if diff.estimate > high else low
    one_sided = stats.t.sf(abs(diff.estimate - edge) / diff.se, diff.df)
    return float(min(1.0, 2 * one_sided))


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order; NaN stays NaN and is not counted.

    Sorted ascending, the i-th smallest (0-based) of m becomes max over j ≤ i of (m − j)·p_j,
    capped at 1: the verdict at adjusted p < α keeps the family-wise error rate at α."""
    finite = sorted((v, i) for i, v in enumerate(p) if math.isfinite(v))
    adjusted = [math.nan] * len(p)
    running = 0.0
    for rank, (value, index) in enumerate(finite):
        running = max(running, min(1.0, (len(finite) - rank) * value))
        adjusted[index] = running
    return adjusted
