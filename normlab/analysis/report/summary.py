"""The report's Summary: final accuracy per norm and dataset, the claims' verdicts at a glance,
how many runs have records and what they trained on."""

from collections import Counter
from collections.abc import Sequence
from typing import Any

from normlab.analysis.claims import judge as cl
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report import overlap
from normlab.analysis.report.tables import cell, datasets, markdown, plural, title
from normlab.analysis.report.views import Inputs, StudyView

NORMS = ("bn", "gn", "ln", "in", "none")


def main_study(studies: Sequence[StudyView], dataset: str) -> StudyView | None:
    """The first study of a dataset with a variant named after a plain norm (bn, gn …)."""
    for study in studies:
        if study.dataset == dataset and any(v in NORMS for v in study.variants):
            return study
    return None


def norm_table(studies: Sequence[StudyView]) -> str:
    shown = datasets(studies)
    mains = {d: main_study(studies, d) for d in shown}
    rows = [
        [f"**{norm}**", *(cell(m.of(norm)) if m else "–" for m in mains.values())]
        for norm in NORMS
        if any(m and norm in m.variants for m in mains.values())
    ]
    source = "; ".join(
        f"{title(d)}: study `{m.name}`, {plural(m.epochs, 'epoch')}"
        if m
        else f"{title(d)}: no study yet"
        for d, m in mains.items()
    )
    if not rows:
        return f"No study of this report has a plain-norm variant yet ({source})."
    table = markdown(["norm", *(title(d) for d in shown)], rows)
    return (
        f"{table}\n\nFinal test accuracy %, mean ± std over the seeds that learned (n). "
        f"From {source}."
    )


def claims_summary(found: Sequence[cl.Verdict]) -> list[str]:
    if not found:
        return ["- no claims in this report"]
    lines = []
    for word in cl.WORDS:
        ids = [v.claim.id for v in found if v.word.startswith(word)]
        lines.append(f"- **{word}** ({len(ids)}): {', '.join(ids) or '—'}")
    return lines


def machines(runs: Sequence[Any]) -> list[tuple[str, str, str, int]]:
    """(host, device, precision, number of runs) per kind of machine the runs (outcomes or
    records) ran on, in sorted order: one count for this report's list and the cost line."""
    counts = Counter((r.host, r.device, r.precision) for r in runs)
    return [(host, device, precision, n) for (host, device, precision), n in sorted(counts.items())]


def hardware(runs: Sequence[vd.Outcome]) -> list[str]:
    return [
        f"- {host}: {n} runs on {device}, {precision}"
        for host, device, precision, n in machines(runs)
    ]


def distinct(studies: Sequence[StudyView]) -> tuple[list[vd.Outcome], int]:
    """The runs with records and the number of planned runs, a run that two studies plan (the
    same identity key: e.g. `batch`'s recipe batch size and `norms`) counted once."""
    runs = {r.source or (r.study, r.variant, r.seed): r for s in studies for r in s.runs}
    keys = frozenset().union(*(s.keys for s in studies))
    planned = len(keys) or sum(len(s.runs) + len(s.missing) for s in studies)
    return list(runs.values()), planned


def summary(inputs: Inputs, verdicts: Sequence[cl.Verdict]) -> str:
    runs, planned = distinct(inputs.studies)
    lines = [
        "## Summary",
        "",
        norm_table(inputs.studies),
        "",
        "**Claims of the five write-ups** (details in [Claims](#claims)):",
        "",
        *claims_summary(verdicts),
        "",
        f"**Runs**: {len(runs)} of {planned} planned runs have records (a run two studies "
        "share counted once); "
        f"training time {sum(r.seconds for r in runs) / 60:.1f} min in all{overlap.shared(runs)}.",
        "",
        "**Hardware**:",
        "",
        *(hardware(runs) or ["- no runs yet"]),
        "",
    ]
    return "\n".join(lines)
