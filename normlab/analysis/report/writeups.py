"""The report's sections on the write-ups: each claim's verdict (normlab.analysis.claims.judge), and
each number a write-up reported beside normlab's for the same variant."""

from collections.abc import Sequence

from normlab.analysis.claims import judge as cl
from normlab.analysis.claims.pinned import V1_SEEDS, restrict, shown
from normlab.analysis.report.tables import cell, markdown, title
from normlab.analysis.report.views import Inputs


def judge_all(inputs: Inputs) -> list[cl.Verdict]:
    """Version 1's verdicts, on seeds 0–2 only (normlab.analysis.claims.pinned)."""
    pinned = [(claim, restrict(study) if study else None) for claim, study in inputs.claims]
    return [
        cl.judge(claim, study.runs, study.missing, not_run=study.not_run)
        if study
        else cl.judge(claim, (), (), False)
        for claim, study in pinned
    ]


def claims_section(found: Sequence[cl.Verdict], inputs: Inputs) -> str:
    """Each claim with its verdict, and the dataset it was judged on: a write-up's CIFAR-10
    claim judged on the PROXY says so in its own line."""
    on = {c.study: f" on {title(s.dataset)}" for c, s in inputs.claims if s}
    lines = [
        "## Claims",
        "",
        "Each claim of the write-ups as a test written in `studies/claims.yaml` before its runs "
        "landed (kinds: see `normlab/analysis/claims.py`), judged on "
        f"{shown(V1_SEEDS)} only, so that seeds added later never move these verdicts. A claim "
        "over several pairs is one family, Holm-adjusted, supported only when every pair is.",
        "",
    ]
    for v in found:
        c = v.claim
        lines.append(
            f"- **{c.id}** ({c.source}; study `{c.study}`{on.get(c.study, '')}, {c.kind}): "
            f"*{c.text}* — "
            f"**{v.word}**: {v.detail}."
        )
    return "\n".join(lines + [""])


def replication(inputs: Inputs) -> str:
    studies = {c.study: s for c, s in inputs.claims if s} | {s.name: s for s in inputs.studies}
    lines = ["## Replication: each write-up's numbers beside normlab's", ""]
    for source in sorted({r.source for r in inputs.reported}):
        rows = []
        for r in (x for x in inputs.reported if x.source == source):
            study = studies.get(r.study)
            runs = restrict(study).of(r.variant) if study else []
            rows.append(
                [
                    f"`{r.study}`",
                    r.variant,
                    f"{r.acc:.2f} ({r.metric})",
                    cell(runs),
                    cell(runs, lambda x: x.best_acc),
                    r.note,
                ]
            )
        header = [
            "study",
            "variant",
            "reported %",
            f"normlab final % ({shown(V1_SEEDS)})",
            f"normlab best-epoch % ({shown(V1_SEEDS)})",
            "note",
        ]
        lines += [f"### Write-up {source}", "", markdown(header, rows), ""]
    if not inputs.reported:
        lines += ["No reported numbers in the claims file.", ""]
    return "\n".join(lines)
