"""Versions 2 and 3 in the report: each claim's v1 verdict (seeds 0–2) beside its registered
tests' verdicts (v2: fresh seeds; v3: issue 30's small-batch tests), what we can now say of it,
and the forest plot.

A write-up's claim is its `source` ("001 (d)"): v1 and v2 may test it with several tests each
(000c-loss and 000c-acc; 002a on normlab's recipe and on 002's cohort's). The tests are in
normlab.analysis.claims.registered, their verdicts in normlab.analysis.claims.retest, their n in
normlab.analysis.claims.sizing (v2, from its pilot) and .budget (v3: the power its n gives).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normlab.analysis.claims import budget, registered, retest, sizing
from normlab.analysis.claims.budget import Budget
from normlab.analysis.claims.kinds import LINE_KINDS
from normlab.analysis.claims.lines import claim_text, margin_text, metric_text, seed_span
from normlab.analysis.report.figures import forest
from normlab.analysis.report.views import StudyView, study_view
from normlab.analysis.study import plan as st

FOREST = "claims-forest.png"


@dataclass(frozen=True)
class Registered:
    """The registrations (v2, v3) with the studies they read (and borrow a pilot or a spread
    from), as views."""

    files: tuple[registered.AnyRegistration, ...]
    views: dict[str, StudyView]
    effects: dict[tuple[str, str, str], float]  # write-ups' reported differences (sizing)


@dataclass(frozen=True)
class Row:
    """One registered test in the report: its verdict, the same test on the pilot, the pilot's
    n (v2); v3: no pilot, what its budget's n buys."""

    verdict: retest.Judged
    pilot: retest.Judged | None  # None: the study has no pilot (its seeds 0–2 are fresh)
    size: sizing.Size | None
    version: int = 2
    spent: Budget | None = None  # v3: what its budget's n buys

    @property
    def test(self) -> Any:
        return self.verdict.test


def _reads(test: Any) -> list[tuple[str, str]]:
    """(study file key, study) of every study a test reads: its own, the one whose pilot it
    borrows, the one whose spread sizes its power (v3)."""
    found = [(test.file, test.study)]
    if test.study in sizing.BORROWED:
        found.append((test.file, sizing.BORROWED[test.study][0]))
    return found + budget.sources(test)


def prepare(
    done: dict[str, Any],
    base: dict,
    reported: Sequence[Any],
    paths: Sequence[Path] = registered.FILES,
) -> Registered | None:
    """The registrations (those of `paths` that exist) and the views of their studies from the
    records `done`; None when there is none (a repository before issue 28)."""
    loaded = [(path, registered.load(path)) for path in paths if path.exists()]
    if not loaded:
        return None
    files = {name: st.load_file(file) for name, file in registered.STUDY_FILES.items()}
    for path, reg in loaded:
        registered.check_studies(reg, {k: f.studies for k, f in files.items()}, path)
    regs = tuple(reg for _, reg in loaded)
    views = {}
    for test in [t for reg in regs for t in reg.claims]:
        for key, name in _reads(test):
            if name not in views:
                planned = st.plan(files[key], base, [name])
                views[name] = study_view(name, planned.studies[name], planned.runs, done)
    return Registered(regs, views, sizing.reported_effects(reported))


def judge_all(reg: Registered) -> list[Row]:
    """Every registered test's row, v2's first."""
    return [_row(reg, f, test) for f in reg.files for test in f.claims]


def _row(reg: Registered, f: registered.AnyRegistration, test: Any) -> Row:
    view = reg.views.get(test.study)
    args = (f.alpha, f.power, reg.effects)
    verdict = retest.judge(test, view, *args)
    if not f.pilot_seeds:  # v3: no pilot, the budget's n
        spent = budget.budget(test, reg.views, f.alpha, f.power)
        return Row(verdict, None, None, f.version, spent)
    has_pilot = not set(test.seeds) & set(f.pilot_seeds)
    pilot = retest.on_seeds(test, view, f.pilot_seeds, *args) if has_pilot else None
    return Row(verdict, pilot, sizing.pilot(test, reg.views, f.pilot_seeds, *args), f.version)


def _sources(v1: Sequence[Any], rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys([v.claim.source for v in v1] + [r.test.source for r in rows]))


def _n(row: Row) -> str:
    """'n = 9 per variant (the pilot gives 9)', saying where the two differ; v3: the power its
    budget's n gives and the n 80 % would need."""
    t, size = row.test, row.size
    text = f"n = {t.n} per variant"
    if row.version == 3:
        return text + _budget(row)
    if size is None:
        return text + (
            " (the issue's 3 fresh seeds; no margin to size by)" if t.kind == "reaches" else ""
        )
    borrowed = sizing.BORROWED.get(t.study)
    where = f"{borrowed[0]}'s pilot, spread ×{borrowed[1]:g}" if borrowed else "the pilot"
    return f"{text} ({where} gives {size.text()}{'' if size.n == t.n else ': see its note'})"


def _budget(row: Row) -> str:
    """' (the budget's, …; at the seed spread …, sd 0.026, power at n = 3: 0.41 to find …,
    0.12 for TOST …; 80 % needs n = 9)'."""
    spent = row.spent
    if spent is None:
        return " (the budget's; no seed spread to compute its power at yet)"
    found = ", ".join(f"{_power(p)} {what}" for what, p in spent.power)
    return (
        f" (the budget's, not a power choice; at {spent.source}, sd {spent.size.sd:.3f}, power "
        f"at n = {row.test.n}: {found}; {spent.target * 100:g} % needs n = {spent.size.text()})"
    )


def _power(p: float) -> str:
    """'0.41'; '> 0.99' rather than a rounded 1.00 (no test is certain)."""
    return "> 0.99" if p > 0.995 else f"{p:.2f}"


def test_head(row: Row, view: StudyView | None) -> str:
    """What a registered verdict is a verdict on: metric, study (its recipe), seeds, n, margin;
    a v3 test's claim spelled out."""
    t = row.test
    study = f"study `{t.study}`" + (f" ({view.description})" if view else "")
    claim = claim_text(t)
    return (
        f"{t.kind}; {metric_text(t)}; {study}; "
        f"{f'seeds {seed_span(t.seeds)}' if t.seeds else 'no seeds registered'}; {_n(row)}; "
        f"margin {margin_text(t)}" + (f"; claim: {claim}" if claim else "")
    )


def _v1_line(v: Any) -> str:
    metric = {"final": "final", "best": "best-epoch (picked on the test set)"}.get(
        getattr(v.claim, "metric", ""), ""
    )
    what = f"{v.claim.kind}" + (f", {metric} test accuracy" if metric else "")
    return f"  - v1 **{v.claim.id}** (seeds 0–2; {what}): **{v.word}**"


def _test_line(row: Row, views: dict[str, StudyView], heading: str) -> str:
    """A registered test's verdict line; its own text when it claims other than the claim
    it is listed under (`heading`: v3's three tests share one source)."""
    v = row.verdict
    head = test_head(row, views.get(row.test.study))
    own = f" — *{row.test.text}*" if row.test.text != heading else ""
    line = f"  - v{row.version} **{row.test.id}**{own} ({head}): **{v.word}**"
    line += f": {v.detail}" if v.detail else ""
    if row.pilot is not None:
        pilot = row.pilot.word + (f": {row.pilot.detail}" if row.pilot.detail else "")
        line += f". On the pilot (seeds 0–2, for comparison only): {pilot}"
    return line + (f". *Note*: {row.test.note}" if row.test.note else "") + "."


def _v3(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r.version == 3]


def _v3_text(rows: Sequence[Row]) -> str:
    """What version 3 is, for the section's opening paragraph ('' with no v3 test)."""
    studies = ", ".join(f"`{s}`" for s in dict.fromkeys(r.test.study for r in _v3(rows)))
    if not studies:
        return ""
    return (
        " Version 3 (`studies/claims-v3.yaml`, kinds slope, flat and higher-by in its header) "
        f"was registered before any record of study {studies}: its tests are judged on that "
        "study's seeds 0–2 (it has no pilot), with the n its budget allows and beside it the "
        "power that n gives and the n that 80 % would need."
    )


def section(v1: Sequence[Any], rows: Sequence[Row], reg: Registered) -> str:
    """Per claim of the write-ups: its v1 verdicts (seeds 0–2) and its registered tests'."""
    title = "versions 1, 2 and 3" if _v3(rows) else "version 1 and version 2"
    lines = [
        f"## Claims, {title}",
        "",
        "Version 2 (`studies/claims-v2.yaml`, kinds in its header) was registered before any "
        "record it is judged on: each test fixes its metric, window, margin, the fresh seeds "
        "it is judged on (never the pilot's, seeds 0–2) and its n (seeds per variant for "
        "80 % power from the pilot); records of other seeds are ignored. Its words: supported · "
        "contradicted (the 95 % CI lies on the wrong side) · contradicted: equivalent within "
        "the margin (TOST) · not decided (with the n that would decide it at the spread seen) "
        "· waiting for runs · not run (registered with the reason; never run half). Version 1 "
        "is judged on seeds 0–2 only (details in [Claims](#claims))." + _v3_text(rows),
        "",
    ]
    for source in _sources(v1, rows):
        mine = [r for r in rows if r.test.source == source]
        old = [v for v in v1 if v.claim.source == source]
        text = (old[0].claim if old else mine[0].test).text
        lines.append(f"- **{source}**: *{text}*")
        lines += [_v1_line(v) for v in old]
        lines += [_test_line(r, reg.views, text) for r in mine]
    return "\n".join(lines + [""])


def _now(row: Row) -> str:
    """What a registered verdict lets us say, in words, with the test on the pilot beside it."""
    said = _said(row)
    return said + (f" (on the pilot: {row.pilot.word})" if row.pilot else "")


def _said(row: Row) -> str:
    word, t = row.verdict.word, row.test
    if word == retest.WORDS[0]:
        return f"{t.id} holds on seeds {seed_span(t.seeds)}"
    if word.startswith(f"{retest.WORDS[1]}:"):
        what = "slope as steep" if t.kind in LINE_KINDS else "difference as large"
        return f"{t.id} does not hold: no {what} as {margin_text(t)} on fresh seeds"
    if word == retest.WORDS[1]:
        return f"{t.id} does not hold: the opposite shows on seeds {seed_span(t.seeds)}"
    if word.startswith(retest.WORDS[2]):
        needs = word.removeprefix(retest.WORDS[2]).strip(" ()")  # "(needs n = 4 per variant)"
        return f"{t.id} is undecided on its {t.n} seeds" + (f" ({needs})" if needs else "")
    if word.startswith(retest.WORDS[3]):
        return f"{t.id}: nothing new yet, {word}"
    return f"{t.id} cannot be decided within the budget (needs n = {t.n} per variant)"


def summary(v1: Sequence[Any], rows: Sequence[Row], out: Path) -> str:
    """The Summary's claim-by-claim lines beside the forest plot (drawn into `out`)."""
    forest.forest([(r.verdict, r.pilot) for r in rows], out / FOREST)
    seeds = "v1: seeds 0–2; v2: fresh seeds" + ("; v3: its registered seeds" if _v3(rows) else "")
    lines = [f"**What we can now say, claim by claim** ({seeds}):", ""]
    for source in _sources(v1, rows):
        old = "; ".join(f"{v.claim.id} {v.word}" for v in v1 if v.claim.source == source)
        new = "; ".join(_now(r) for r in rows if r.test.source == source)
        lines.append(f"- **{source}**: {new or 'no v2 test'}" + (f" (v1: {old})" if old else ""))
    caption = (
        "every registered test's effect in margins (positive: the claim's direction; dashed: "
        "±1 margin) with its 90 % and 95 % CI, on its registered seeds (blue) and on the pilot, "
        "seeds 0–2 (grey; v2 only); its verdict on the right"
    )
    return "\n".join([*lines, "", f"![{caption}]({FOREST})", f"*{caption}*", ""])
