"""The report's plain view of a study: what was planned and the runs that have records.

`build` (normlab.analysis.report.cli) takes these views, so tests feed it fake runs in memory;
`study_view` makes one from a plan (normlab.analysis.study.plan) and the records found
(normlab.analysis.study.store).
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from normlab.analysis.claims import verdicts as vd
from normlab.analysis.claims.schema import Reported
from normlab.analysis.study import plan as studies
from normlab.analysis.study.records import Diverged, Record
from normlab.data import specs


@dataclass(frozen=True)
class StudyView:
    """One study as the report sees it: what was planned and the runs that have records."""

    name: str
    description: str
    dataset: str
    epochs: int
    seeds: tuple[int, ...]
    variants: dict[str, str]  # variant → its overrides as text, in the study's order
    runs: tuple[vd.Outcome, ...]
    missing: tuple[tuple[str, int], ...] = ()  # planned (variant, seed) without a record
    variant_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # fewer seeds
    keys: frozenset[str] = frozenset()  # identity keys of its planned runs (shared runs: once)
    not_run: str = ""  # why the study is left out (studies.Study.not_run), "" if it is not
    # variant → the resolved params of its first planned run: what it trains at (norm, batch
    # size) before any record says so (v3's power: normlab.analysis.claims.budget)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of(self, variant: str) -> list[vd.Outcome]:
        return [r for r in self.runs if r.variant == variant]


@dataclass(frozen=True)
class Inputs:
    """Everything one report is built from."""

    studies: tuple[StudyView, ...]  # the report's own studies, in plan order
    claims: tuple[
        tuple[Any, StudyView | None], ...
    ] = ()  # each claim with its study (None: undefined)
    reported: tuple[Reported, ...] = ()
    command: str = "python -m normlab.analysis.report"
    notes: tuple[str, ...] = field(default_factory=tuple)
    scope: str = ""  # what this report is when it is not the project's answer (a profile …)
    cost: str = ""  # results/README.md only: every run under results/ together (report.all_records)
    registered: Any = None  # results/README.md only: claims v2, v3 (registration.Registered)
    curve: Any = None  # the batch-size curve (joined.Curve), in the report that plans its HOME
    see: dict[str, str] = field(default_factory=dict)  # study → a line its section adds
    options: str = ""  # its --file/--profile as `make study` takes them ("" or ending in " ")


def outcome(record: Record | Diverged) -> vd.Outcome:
    """A record, or a divergence record (no numbers: named as diverged), as the report sees it."""
    if isinstance(record, Diverged):
        return vd.diverged_of(record, specs.spec(record.dataset).classes)
    return vd.run_of(record)


def study_view(
    name: str,
    spec: studies.Study,
    planned: Sequence[studies.PlannedRun],
    done: dict[str, Record | Diverged],
) -> StudyView:
    """A planned study with the runs that have records or divergence records (relabelled with
    this study's names: a run shared by two studies has one record, under the study that
    trained it)."""
    runs, missing = [], []
    for run in planned:
        record = done.get(run.key)
        if record is None:
            missing.append((run.variant, run.seed))
        else:
            runs.append(dataclasses.replace(outcome(record), study=name, variant=run.variant))
    overrides = {
        v: " ".join(f"{k}={val}" for k, val in o.items()) for v, o in spec.variants.items()
    }
    dataset = planned[0].params["dataset"] if planned else "?"
    params: dict[str, dict[str, Any]] = {}
    for run in planned:
        params.setdefault(run.variant, run.params)
    return StudyView(
        name,
        spec.description,
        dataset,
        spec.epochs,
        tuple(spec.seeds),
        overrides,
        tuple(runs),
        tuple(missing),
        {v: tuple(s) for v, s in spec.variant_seeds.items()},
        frozenset(run.key for run in planned),
        spec.not_run,
        params,
    )
