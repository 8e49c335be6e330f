"""The batch-size curve: final test error per norm over batch 2–128, joining study `batch`
(16–128, studies/default.yaml) and study `small-batch` (2–8, studies/small-batch.yaml), in the
report of the file that plans `small-batch` (results/small-batch/README.md), with its table
(its section: normlab.analysis.report.batchcurve).

Why a join rather than one study: small-batch's file pins the batch study's recipe and lr rule
so that its runs and batch's make one curve without retraining anything. That holds only where
the recipes really are the same, so a run is joined only when its params equal the reference
apart from the norm (and its groups), the batch size, the lr and the seed. The reference is
small-batch's own planned params, known before any of its runs has a record; a record of
another recipe is left out and counted, never drawn.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from normlab.analysis.claims.verdicts import Outcome
from normlab.analysis.report import tables
from normlab.analysis.report.figures import batchsize
from normlab.analysis.report.views import outcome
from normlab.analysis.study import plan as st
from normlab.analysis.study.records import PLACE_AND_SPEED

STUDIES = ("batch", "small-batch")  # the studies whose planned runs make the curve
HOME = "small-batch"  # the curve is in the report of the file that plans this study
BATCHES = (2, 4, 8, 16, 32, 64, 128)  # the axis, whether or not each has runs yet
FREE = ("norm", "groups", "seed", *PLACE_AND_SPEED)  # what may differ between joined runs
FREE_RECIPE = ("batch_size", "lr")


class Slot(NamedTuple):
    """One planned run of the curve's recipe: which study plans it, its norm, batch and lr."""

    study: str
    norm: str
    batch: int
    lr: float


def recipe(params: Mapping[str, Any]) -> dict:
    """The params two joined runs must share: all but FREE and the recipe's FREE_RECIPE."""
    kept = {k: v for k, v in params.items() if k not in FREE}
    kept["recipe"] = {k: v for k, v in params["recipe"].items() if k not in FREE_RECIPE}
    return kept


def slot(study: str, params: Mapping[str, Any]) -> Slot:
    r = params["recipe"]
    return Slot(study, batchsize.label_of(params), int(r["batch_size"]), float(r["lr"]))


@dataclass(frozen=True)
class Curve:
    reference: dict  # recipe(params) of every joined run
    planned: tuple[Slot, ...]  # the planned runs of that recipe, each identity once
    runs: tuple[Outcome, ...]  # those with a record (or a divergence record)
    other_recipe: tuple[Outcome, ...] = ()  # records offered with another recipe: left out

    def norms(self) -> list[str]:
        return list(dict.fromkeys([s.norm for s in self.planned] + self.labels()))

    def labels(self) -> list[str]:
        return [batchsize.norm_label(r) for r in self.runs]

    def batches(self) -> list[int]:
        return sorted(set(BATCHES) | {s.batch for s in self.planned} | set(self.found()))

    def found(self) -> list[int]:
        return [batchsize.batch_of(r) for r in self.runs]

    def cell(self, norm: str, batch: int) -> list[Outcome]:
        return [
            r
            for r in self.runs
            if batchsize.norm_label(r) == norm and batchsize.batch_of(r) == batch
        ]

    def count(self, batch: int) -> tuple[int, int]:
        """(runs with records, runs planned) at this batch size, every norm together."""
        return self.found().count(batch), sum(s.batch == batch for s in self.planned)


def join(
    reference: dict, planned: Sequence[tuple[Slot, Mapping[str, Any]]], found: Sequence[Outcome]
) -> Curve:
    """The curve of `reference`'s recipe: `planned` is (Slot, params) pairs, `found` the
    outcomes of planned runs with records; any of another recipe is left out."""
    slots = tuple(s for s, params in planned if recipe(params) == reference)
    same = tuple(r for r in found if recipe(r.params) == reference)
    other = tuple(r for r in found if recipe(r.params) != reference)
    return Curve(reference, slots, same, other)


def collect(planned: Sequence[st.PlannedRun], done: Mapping[str, Any]) -> Curve:
    """The curve of HOME's recipe from these planned runs (a run two studies plan: once, under
    the first) and the records found (`done`: identity key → record)."""
    unique = list({r.key: r for r in reversed(planned)}.values())[::-1]
    home = next(r for r in unique if r.study == HOME)
    found = [
        dataclasses.replace(outcome(done[r.key]), study=r.study, variant=r.variant)
        for r in unique
        if r.key in done
    ]
    return join(recipe(home.params), [(slot(r.study, r.params), r.params) for r in unique], found)


def curve(
    own: Sequence[st.PlannedRun], defined: Mapping[str, Path], base: Any, done: Mapping[str, Any]
) -> Curve | None:
    """The curve, for a report whose plan (`own`) has HOME; None for any other. The other
    STUDIES are planned from the file that defines each (`defined`: name → study file)."""
    mine = [r for r in own if r.study in STUDIES]
    if not any(r.study == HOME for r in mine):
        return None
    names = [n for n in STUDIES if n in defined and not any(r.study == n for r in mine)]
    others = [r for n in names for r in st.plan(st.load_file(defined[n]), base, [n]).runs]
    return collect(others + mine, done)


def error_cell(curve: Curve, norm: str, batch: int) -> str:
    runs = curve.cell(norm, batch)
    if runs:
        return tables.cell(runs, lambda r: 100 - r.acc)
    planned = any((s.norm, s.batch) == (norm, batch) for s in curve.planned)
    return "n = 0 (pending)" if planned else "–"


def table(curve: Curve) -> str:
    """Final test error % per norm × batch size: mean ± sd (n), a last row of runs / planned."""
    batches = curve.batches()
    rows = [[f"**{n}**", *(error_cell(curve, n, b) for b in batches)] for n in curve.norms()]
    rows.append(["runs / planned", *("{} / {}".format(*curve.count(b)) for b in batches)])
    return tables.markdown(["norm", *(f"batch {b}" for b in batches)], rows)
