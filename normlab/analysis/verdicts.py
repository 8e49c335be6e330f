"""The statistics behind every verdict: did a run learn, Welch's t, Holm, TOST, and power.

Why these and not a bare p-value per pair:
- A run that stayed at chance (or diverged) is a different kind of result from a run that
  learned; averaging it in gives "69.18 ± 50.09" and a CI of ±124 points that says nothing. So
  such runs are counted and named, and comparisons use the runs that learned (saying so).
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
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.80
LEARN_MARGIN = 5.0  # points above chance: a final accuracy below chance + this did not learn
DIVERGED_LOSS = (
    100.0  # cross-entropy of a uniform guess is ln(classes) ≈ 2.3; 100 is logits blown up
)
MDD_RULE = (
    "80 % power, two-sided 5 %, t approximation (t₀.₉₇₅ + t₀.₈₀) · pooled seed sd · √(1/nA + 1/nB)"
)


def chance(classes: int) -> float:
    """Accuracy (%) of guessing one class: what a run that learned nothing scores."""
    return 100.0 / classes


def failure(acc: float, loss: float, classes: int, learned: bool = True) -> str | None:
    """Why a run did not learn ('diverged', 'stayed at chance'), or None when it learned."""
    if not (math.isfinite(loss) and math.isfinite(acc)) or loss > DIVERGED_LOSS:
        return "diverged"
    if acc < chance(classes) + LEARN_MARGIN:
        return "stayed at chance"
    return None if learned else "did not learn"


@dataclass(frozen=True)
class Run:
    """The parts of one run record that summaries, claims and figures read."""

    study: str
    variant: str
    seed: int
    dataset: str
    classes: tuple[str, ...]
    acc: float  # final-epoch test accuracy, %
    loss: float  # final-epoch test loss
    best_acc: float
    best_epoch: int
    train_acc: float
    gap: float  # train − test accuracy, points
    history: tuple[dict[str, float], ...]
    confusion: tuple[tuple[int, ...], ...]
    misclassified: dict[str, list]
    params: dict[str, Any]
    seconds: float
    device: str
    precision: str
    host: str
    torch: str
    code: str = ""  # the commit it trained at
    concurrent: int = 1  # runs its machine trained at once: its seconds include that sharing
    learned: bool = True  # the record's own flag (set by the evaluate stage, same rule)
    source: Path | None = None

    @property
    def failure(self) -> str | None:
        return failure(self.acc, self.loss, len(self.classes), self.learned)

    @property
    def label(self) -> str:
        return f"{self.variant} s{self.seed}"


def run_of(record: Any) -> Run:
    """A records.Record (or the same fields as a plain dict) → Run."""
    raw = record.model_dump(mode="json", by_alias=True) if hasattr(record, "model_dump") else record
    return Run(
        study=raw["study"],
        variant=raw["variant"],
        seed=int(raw["seed"]),
        dataset=raw["dataset"],
        classes=tuple(raw["per_class_acc"]),
        acc=float(raw["final"]["acc"]),
        loss=float(raw["final"]["loss"]),
        best_acc=float(raw["best"]["acc"]),
        best_epoch=int(raw["best"]["epoch"]),
        train_acc=float(raw["train"]["acc"]),
        gap=float(raw["gap"]),
        history=tuple(raw["history"]),
        confusion=tuple(tuple(int(c) for c in row) for row in raw["confusion"]),
        misclassified=dict(raw["misclassified"]),
        params=raw["params"],
        seconds=float(raw["seconds"]),
        device=raw["device"],
        precision=raw["precision"],
        host=raw["host"],
        torch=raw["torch"],
        code=raw.get("code", ""),
        concurrent=int(raw.get("concurrent", 1)),
        learned=bool(raw.get("learned", True)),
        source=getattr(record, "source", None),
    )


@dataclass(frozen=True)
class Group:
    """One variant's runs and one number per run (the metric a test reads)."""

    name: str
    runs: tuple[Run, ...]
    values: tuple[float, ...]

    @property
    def failed(self) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if r.failure)

    @property
    def learned(self) -> tuple[float, ...]:
        return tuple(v for r, v in zip(self.runs, self.values, strict=True) if not r.failure)

    @property
    def usable(self) -> np.ndarray:
        """The values tests read: those of the runs that learned; all of them when none did
        (then not learning is the finding, e.g. InstanceNorm before global pooling)."""
        return np.asarray(self.learned if self.learned else self.values, dtype=float)

    @property
    def n(self) -> int:
        return len(self.usable)

    def failed_text(self) -> str:
        """'1 of 3 seeds stayed at chance, 11.35 % (seed 2)'; '' when every run learned."""
        if not self.failed:
            return ""
        whys = sorted({r.failure for r in self.failed})
        accs = ", ".join(f"{r.acc:.2f} %" for r in self.failed)
        seeds = ", ".join(str(r.seed) for r in self.failed)
        plural = "s" if len(self.failed) > 1 else ""
        return (
            f"{len(self.failed)} of {len(self.runs)} seeds {' or '.join(whys)}, {accs} "
            f"(seed{plural} {seeds})"
        )

    def basis(self) -> str:
        """What the statistics of this group are computed over, when not simply every run."""
        if not self.failed:
            return ""
        if not self.learned:
            return f"{self.name} did not learn: {self.failed_text()}"
        return (
            f"{self.name}: {self.failed_text()} (did not learn); "
            f"the {len(self.learned)} that learned are compared"
        )


def group(name: str, runs: Sequence[Run], values: Sequence[float]) -> Group:
    return Group(name, tuple(runs), tuple(float(v) for v in values))


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


def pm(stats_: Stats, digits: int = 2) -> str:
    """'99.31 ± 0.08' (std over seeds); '–' for no runs."""
    if not stats_.n:
        return "–"
    return f"{stats_.mean:.{digits}f} ± {stats_.std:.{digits}f}"


def signed(x: float, digits: int = 2) -> str:
    """'+0.03', '-1.20'; never '-0.00' for a difference that rounds to nothing."""
    text = f"{x:+.{digits}f}"
    return text.replace("-", "+") if float(text) == 0 else text


def fmt_p(p: float) -> str:
    return "–" if not math.isfinite(p) else f"{p:.3g}"


def numbers(diff: Diff, p_adj: float, unit: str = "points") -> str:
    """'+0.03 points, 95 % CI −0.13 to +0.19; Welch p = 0.571, Holm p = 1; n = 3 vs 3'."""
    n = " vs ".join(str(k) for k in diff.n)
    if not diff.testable:
        why = "fewer than 2 runs" if min(diff.n) < 2 else "no spread between seeds"
        return f"{signed(diff.estimate)} {unit}; not testable: {why}; n = {n}"
    return (
        f"{signed(diff.estimate)} {unit}, 95 % CI {signed(diff.low)} to {signed(diff.high)}; "
        f"p = {fmt_p(diff.p)}, Holm p = {fmt_p(p_adj)}; n = {n}"
    )


def mdd_text(diff: Diff, unit: str = "points") -> str:
    n = " vs ".join(str(k) for k in diff.n)
    if not math.isfinite(diff.mdd):
        return ""
    return f"the smallest difference n = {n} could detect is {diff.mdd:.2f} {unit}"


def compare(a: Group, b: Group, diff: Diff, p_adj: float) -> str:
    """One study verdict line: the word from the Holm-adjusted p, the numbers, and any runs
    that did not learn (named, never averaged in)."""
    head = f"**{a.name}** vs **{b.name}**"
    if diff.testable and p_adj < ALPHA:
        word = "higher" if diff.estimate > 0 else "lower"
        head = f"**{a.name}** is {word} than **{b.name}** by {abs(diff.estimate):.2f} points"
        line = f"{head} ({numbers(diff, p_adj)})."
    elif diff.testable:
        line = f"{head}: not detectable ({numbers(diff, p_adj)}; {mdd_text(diff)})."
    else:
        line = f"{head}: cannot be tested ({numbers(diff, p_adj)})."
    notes = [g.basis() for g in (a, b) if g.basis()]
    return line + "".join(f" {note}." for note in notes)
