"""Version 2 in the report and in `plan`: each claim's v1 verdict (seeds 0–2) beside its v2
verdict (registered tests on fresh seeds), what we can now say of it, and the forest plot.

A write-up's claim is its `source` ("001 (d)"): v1 and v2 may test it with several tests each
(000c-loss and 000c-acc; 002a on normlab's recipe and on 002's cohort's). The tests are in
normlab.analysis.claims.registered, their verdicts in normlab.analysis.claims.retest, their n in
normlab.analysis.claims.sizing.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normlab.analysis.claims import registered, retest, sizing
from normlab.analysis.claims.lines import margin_text, metric_text, seed_span
from normlab.analysis.report.figures import forest
from normlab.analysis.report.views import StudyView, study_view
from normlab.analysis.study import plan as st

FOREST = "claims-forest.png"


@dataclass(frozen=True)
class Registered:
    """The registration with the studies it reads (and borrows a pilot from), as views."""

    file: registered.Registration
    views: dict[str, StudyView]
    effects: dict[tuple[str, str, str], float]  # write-ups' reported differences (sizing)


@dataclass(frozen=True)
class Row:
    """One v2 test in the report: its verdict, the same test on the pilot, the pilot's n."""

    verdict: retest.Judged
    pilot: retest.Judged | None  # None: the study has no pilot (its seeds 0–2 are fresh)
    size: sizing.Size | None

    @property
    def test(self) -> Any:
        return self.verdict.test


def prepare(
    done: dict[str, Any], base: dict, reported: Sequence[Any], path: Path = registered.FILE
) -> Registered | None:
    """The registration and the views of its studies from the records `done`; None when there
    is no registration file (a repository before issue 28)."""
    if not path.exists():
        return None
    reg = registered.load(path)
    files = {name: st.load_file(file) for name, file in registered.STUDY_FILES.items()}
    registered.check_studies(reg, {k: f.studies for k, f in files.items()}, path)
    views = {}
    for test in reg.claims:
        for name in (test.study, sizing.BORROWED.get(test.study, (test.study,))[0]):
            if name in views:
                continue
            planned = st.plan(files[test.file], base, [name])
            views[name] = study_view(name, planned.studies[name], planned.runs, done)
    return Registered(reg, views, sizing.reported_effects(reported))


def judge_all(reg: Registered) -> list[Row]:
    f = reg.file
    found = []
    for test in f.claims:
        view = reg.views.get(test.study)
        verdict = retest.judge(test, view, f.alpha, f.power, reg.effects)
        has_pilot = not set(test.seeds) & set(f.pilot_seeds)
        args = (f.alpha, f.power, reg.effects)
        pilot = retest.on_seeds(test, view, f.pilot_seeds, *args) if has_pilot else None
        found.append(Row(verdict, pilot, sizing.pilot(test, reg.views, f.pilot_seeds, *args)))
    return found


def _sources(v1: Sequence[Any], rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys([v.claim.source for v in v1] + [r.test.source for r in rows]))


def _n(row: Row) -> str:
    """'n = 9 per variant (the pilot gives 9)', saying where the two differ."""
    t, size = row.test, row.size
    text = f"n = {t.n} per variant"
    if size is None:
        return text + (
            " (the issue's 3 fresh seeds; no margin to size by)" if t.kind == "reaches" else ""
        )
    borrowed = sizing.BORROWED.get(t.study)
    where = f"{borrowed[0]}'s pilot, spread ×{borrowed[1]:g}" if borrowed else "the pilot"
    return f"{text} ({where} gives {size.text()}{'' if size.n == t.n else ': see its note'})"


def v2_head(row: Row, view: StudyView | None) -> str:
    """What a v2 verdict is a verdict on: metric, study (its recipe), seeds, n, margin."""
    t = row.test
    study = f"study `{t.study}`" + (f" ({view.description})" if view else "")
    return (
        f"{t.kind}; {metric_text(t)}; {study}; "
        f"{f'seeds {seed_span(t.seeds)}' if t.seeds else 'no seeds registered'}; {_n(row)}; "
        f"margin {margin_text(t)}"
    )


def _v1_line(v: Any) -> str:
    metric = {"final": "final", "best": "best-epoch (picked on the test set)"}.get(
        getattr(v.claim, "metric", ""), ""
    )
    what = f"{v.claim.kind}" + (f", {metric} test accuracy" if metric else "")
    return f"  - v1 **{v.claim.id}** (seeds 0–2; {what}): **{v.word}**"


def _v2_line(row: Row, views: dict[str, StudyView]) -> str:
    v = row.verdict
    line = f"  - v2 **{row.test.id}** ({v2_head(row, views.get(row.test.study))}): **{v.word}**"
    line += f": {v.detail}" if v.detail else ""
    if row.pilot is not None:
        pilot = row.pilot.word + (f": {row.pilot.detail}" if row.pilot.detail else "")
        line += f". On the pilot (seeds 0–2, for comparison only): {pilot}"
    return line + (f". *Note*: {row.test.note}" if row.test.note else "") + "."


def section(v1: Sequence[Any], rows: Sequence[Row], reg: Registered) -> str:
    """Per claim of the write-ups: its v1 verdicts (seeds 0–2) and its v2 verdicts."""
    lines = [
        "## Claims, version 1 and version 2",
        "",
        "Version 2 (`studies/claims-v2.yaml`, kinds in its header) was registered before any "
        "record it is judged on: each test fixes its metric, window, margin, the fresh seeds "
        "it is judged on (never the pilot's, seeds 0–2) and its n (seeds per variant for "
        "80 % power from the pilot); records of other seeds are ignored. Its words: supported · "
        "contradicted (the 95 % CI lies on the wrong side) · contradicted: equivalent within "
        "the margin (TOST) · not decided (with the n that would decide it at the spread seen) "
        "· waiting for runs · not run (registered with the reason; never run half). Version 1 "
        "is judged on seeds 0–2 only (details in [Claims](#claims)).",
        "",
    ]
    for source in _sources(v1, rows):
        mine = [r for r in rows if r.test.source == source]
        old = [v for v in v1 if v.claim.source == source]
        text = (old[0].claim if old else mine[0].test).text
        lines.append(f"- **{source}**: *{text}*")
        lines += [_v1_line(v) for v in old]
        lines += [_v2_line(r, reg.views) for r in mine]
    return "\n".join(lines + [""])


def _now(row: Row) -> str:
    """What a v2 verdict lets us say, in words, with the same test on the pilot beside it."""
    said = _said(row)
    return said + (f" (on the pilot: {row.pilot.word})" if row.pilot else "")


def _said(row: Row) -> str:
    word, t = row.verdict.word, row.test
    if word == retest.WORDS[0]:
        return f"{t.id} holds on seeds {seed_span(t.seeds)}"
    if word.startswith(f"{retest.WORDS[1]}:"):
        return f"{t.id} does not hold: no difference as large as {margin_text(t)} on fresh seeds"
    if word == retest.WORDS[1]:
        return f"{t.id} does not hold: the opposite shows on seeds {seed_span(t.seeds)}"
    if word.startswith(retest.WORDS[2]):
        return f"{t.id} is undecided on its {t.n} seeds ({word.removeprefix('not decided ')})"
    if word.startswith(retest.WORDS[3]):
        return f"{t.id}: nothing new yet, {word}"
    return f"{t.id} cannot be decided within the budget (needs n = {t.n} per variant)"


def summary(v1: Sequence[Any], rows: Sequence[Row], out: Path) -> str:
    """The Summary's claim-by-claim lines beside the forest plot (drawn into `out`)."""
    forest.forest([(r.verdict, r.pilot) for r in rows], out / FOREST)
    lines = ["**What we can now say, claim by claim** (v1: seeds 0–2; v2: fresh seeds):", ""]
    for source in _sources(v1, rows):
        old = "; ".join(f"{v.claim.id} {v.word}" for v in v1 if v.claim.source == source)
        new = "; ".join(_now(r) for r in rows if r.test.source == source)
        lines.append(f"- **{source}**: {new or 'no v2 test'}" + (f" (v1: {old})" if old else ""))
    caption = (
        "every v2 test's effect in margins (positive: the claim's direction; dashed: ±1 "
        "margin) with its 90 % and 95 % CI, on its registered seeds (blue) and on the pilot, "
        "seeds 0–2 (grey); its v2 verdict on the right"
    )
    return "\n".join([*lines, "", f"![{caption}]({FOREST})", f"*{caption}*", ""])
