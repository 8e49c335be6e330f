"""What the report says of runs: did each learn, which runs a number is computed over, and the
words and numbers of a comparison. The tests themselves are normlab.analysis.claims.stats'.

A run that stayed at chance (or fell back to it, or diverged) is a different kind of result
from a run that learned; averaging it in gives "69.18 ± 50.09" and a CI of ±124 points that
says nothing. So such runs are counted and named, and comparisons use the runs that learned
(saying so).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab.analysis.claims import notation
from normlab.analysis.claims.stats import ALPHA, MDD_RULE, Diff, holm, welch
from normlab.train import metrics

DIVERGED_LOSS = (
    100.0  # cross-entropy of a uniform guess is ln(classes) ≈ 2.3; 100 is logits blown up
)


def chance(classes: int) -> float:
    """Accuracy (%) of guessing one class: what a run that learned nothing scores."""
    return 100.0 / classes


def failure(
    acc: float, loss: float, classes: int, learned: bool = True, best_acc: float = math.nan
) -> str | None:
    """Why a run did not learn ('diverged', 'stayed at chance', 'fell back to chance': it
    learned at some epoch, then lost it all), or None when it learned.
    The chance rule is the evaluate stage's (metrics.learned), so report and record agree."""
    if not (math.isfinite(loss) and math.isfinite(acc)) or loss > DIVERGED_LOSS:
        return "diverged"
    if not metrics.learned(acc, classes):
        if math.isfinite(best_acc) and metrics.learned(best_acc, classes):
            return "fell back to chance"
        return "stayed at chance"
    return None if learned else "did not learn"


@dataclass(frozen=True)
class Outcome:
    """The parts of one run record that summaries, claims and figures read."""

    study: str
    variant: str
    seed: int
    dataset: str
    classes: tuple[str, ...]
    acc: float  # final-epoch test accuracy, %
    loss: float  # final-epoch test loss
    best_acc: float
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
    started: str = ""  # ISO UTC times of records since issue 28 ("" before): overlap.py
    ended: str = ""
    learned: bool = True  # the record's own flag (set by the evaluate stage, same rule)
    source: Path | None = None
    error: str = ""  # a divergence record's message (then acc and loss are NaN)

    @property
    def failure(self) -> str | None:
        return failure(self.acc, self.loss, len(self.classes), self.learned, self.best_acc)

    @property
    def label(self) -> str:
        return f"{self.variant} s{self.seed}"

    @property
    def measured(self) -> bool:
        """Whether it has numbers: a run loop.fit stopped (divergence record) has none."""
        return math.isfinite(self.acc)

    def final_text(self) -> str:
        """'11.35 %', or for a run with no numbers why: 'diverged at epoch 1, step 3'."""
        return f"{self.acc:.2f} %" if self.measured else self.error.split(" (")[0]


def run_of(record: Any) -> Outcome:
    """A records.Record (or the same fields as a plain dict) → Outcome."""
    raw = record.model_dump(mode="json", by_alias=True) if hasattr(record, "model_dump") else record
    return Outcome(
        study=raw["study"],
        variant=raw["variant"],
        seed=int(raw["seed"]),
        dataset=raw["dataset"],
        classes=tuple(raw["per_class_acc"]),
        acc=float(raw["final"]["acc"]),
        loss=float(raw["final"]["loss"]),
        best_acc=float(raw["best"]["acc"]),
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
        started=raw.get("started") or "",
        ended=raw.get("ended") or "",
        learned=bool(raw.get("learned", True)),
        source=getattr(record, "source", None),
    )


def diverged_of(diverged: Any, classes: Sequence[str]) -> Outcome:
    """A records.Diverged → Outcome with no numbers (acc and loss NaN, nothing to draw), so
    the did-not-learn rules count and name it ('diverged')."""
    nan = math.nan
    return Outcome(
        study=diverged.study,
        variant=diverged.variant,
        seed=diverged.seed,
        dataset=diverged.dataset,
        classes=tuple(classes),
        acc=nan,
        loss=nan,
        best_acc=nan,
        gap=nan,
        history=(),
        confusion=(),
        misclassified={"index": [], "predicted": [], "actual": [], "confidence": []},
        params=diverged.params,
        seconds=0.0,
        device=diverged.device,
        precision=diverged.precision,
        host=diverged.host,
        torch=diverged.torch,
        code=diverged.code,
        learned=False,
        source=diverged.source,
        error=diverged.error,
    )


def learned_runs(runs: Sequence[Outcome]) -> list[Outcome]:
    return [r for r in runs if not r.failure]


def usable_runs(runs: Sequence[Outcome]) -> list[Outcome]:
    """What statistics and figures read: the runs that learned; every run with numbers when
    none did (a quick check of the machinery, or not learning is the finding), so nothing is
    blank unless every run diverged."""
    return learned_runs(runs) or [r for r in runs if r.measured]


@dataclass(frozen=True)
class VariantRuns:
    """One variant's runs and one number per run (the metric a test reads)."""

    name: str
    runs: tuple[Outcome, ...]
    values: tuple[float, ...]

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(r for r in self.runs if r.failure)

    @property
    def learned(self) -> tuple[float, ...]:
        return tuple(v for r, v in zip(self.runs, self.values, strict=True) if not r.failure)

    @property
    def usable(self) -> np.ndarray:
        """The values tests read: those of the runs that learned; all of them (with numbers)
        when none did (then not learning is the finding, e.g. InstanceNorm before global
        pooling)."""
        measured = [v for r, v in zip(self.runs, self.values, strict=True) if r.measured]
        return np.asarray(self.learned if self.learned else measured, dtype=float)

    def failed_text(self) -> str:
        """'1 of 3 seeds stayed at chance, 11.35 % (seed 2)'; '' when every run learned."""
        if not self.failed:
            return ""
        whys = sorted({r.failure for r in self.failed})
        of = f"{len(self.failed)} of {len(self.runs)}" if len(self.runs) > 1 else "its one"
        head = f"{of} seed{'s' * (len(self.runs) > 1)} {' or '.join(whys)}"
        if any(not r.measured for r in self.failed):  # no accuracy to print: say why per seed
            return f"{head} ({'; '.join(f'seed {r.seed}: {r.final_text()}' for r in self.failed)})"
        accs = ", ".join(f"{r.acc:.2f} %" for r in self.failed)
        seeds = ", ".join(str(r.seed) for r in self.failed)
        plural = "s" if len(self.failed) > 1 else ""
        return f"{head}, {accs} (seed{plural} {seeds})"

    def basis(self) -> str:
        """What the statistics of this group are computed over, when not simply every run."""
        if not self.failed:
            return ""
        if not self.learned:
            return f"{self.name} did not learn: {self.failed_text()}"
        return (
            f"{self.name}: {self.failed_text()} (did not learn); "
            f"the {len(self.learned)} that learned {'is' if len(self.learned) == 1 else 'are'} "
            "compared"
        )


def group(name: str, runs: Sequence[Outcome], values: Sequence[float]) -> VariantRuns:
    return VariantRuns(name, tuple(runs), tuple(float(v) for v in values))


def compare(a: VariantRuns, b: VariantRuns, diff: Diff, p_adj: float) -> str:
    """One study verdict line: the word from the Holm-adjusted p, the numbers, and any runs
    that did not learn (named, never averaged in)."""
    head = f"**{a.name}** vs **{b.name}**"
    if diff.testable and p_adj < ALPHA:
        word = "higher" if diff.estimate > 0 else "lower"
        head = f"**{a.name}** is {word} than **{b.name}** by {abs(diff.estimate):.2f} points"
        line = f"{head} ({notation.numbers(diff, p_adj)})."
    elif diff.testable:
        line = (
            f"{head}: not detectable ({notation.numbers(diff, p_adj)}; {notation.mdd_text(diff)})."
        )
    else:
        line = f"{head}: cannot be tested ({notation.numbers(diff, p_adj)})."
    notes = [g.basis() for g in (a, b) if g.basis()]
    return line + "".join(f" {note}." for note in notes)


def family(groups: dict[str, VariantRuns], pairs: Sequence[tuple[str, str]]) -> list[str]:
    """A study's verdicts: Welch per pair on the groups' numbers (final test accuracy), Holm
    over the pairs (one family), one line each under a header saying how to read them."""
    diffs = [welch(groups[a].usable, groups[b].usable) for a, b in pairs]
    adjusted = holm([d.p for d in diffs])
    lines = [
        f"- {compare(groups[a], groups[b], d, p)}"
        for (a, b), d, p in zip(pairs, diffs, adjusted, strict=True)
    ]
    return [
        f"Family: {'these' if len(pairs) > 1 else 'this'} {len(pairs)} "
        f"comparison{'s' if len(pairs) > 1 else ''} of final test accuracy (Welch's t, 95 % CI); "
        f"the word follows the Holm-adjusted p (< {ALPHA}), raw p beside it. 'Not "
        f"detectable' is not 'equal': each gives the smallest difference its n could detect "
        f"({MDD_RULE}).",
        "",
        *lines,
    ]
