"""results/README.md, its figures and DVC's seed bands, from run records alone.

A planned run is in the report when a record with its identity key exists anywhere under
results/ (records.done); nothing is retrained and nothing is read from DVC's experiment refs,
so any clone rebuilds the committed files byte for byte. Every number is computed here from
the records; the claims' verdicts come from studies/claims.yaml (normlab.analysis.claims).

The core, `build`, takes plain `Study` views of runs, so tests feed it fake runs in memory;
`main` reads the plan (normlab.analysis.studies) and the records (normlab.analysis.records).

Usage: python -m normlab.analysis.report [--file F] [--study S …] [--profile P] [--epochs N]
       [--set key=value …] [--out DIR]
The default study file writes results/; a profile or another file writes
results/<profile or file name>/ (never over the committed answer).
"""

import argparse
import dataclasses
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normlab import data, outputs
from normlab.analysis import claims as cl
from normlab.analysis import claims_file, figures
from normlab.analysis import verdicts as vd
from normlab.analysis.stats import describe
from normlab.errors import NormlabError, run_stage
from normlab.io import atomic_path, write_text

NORMS = ("bn", "gn", "ln", "in", "none")
DATASETS = ("mnist", "fashion-mnist", "cifar10-proxy")  # always in the report, runs or not
TITLES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10-proxy": "CIFAR-10 PROXY",
    "cifar10": "CIFAR-10",
}
BANDS_DIR = "bands"  # out/bands/<study>.csv, declared as a plot folder in dvc.yaml


@dataclass(frozen=True)
class Study:
    """One study as the report sees it: what was planned and the runs that have records."""

    name: str
    description: str
    dataset: str
    epochs: int
    seeds: tuple[int, ...]
    variants: dict[str, str]  # variant → its overrides as text, in the study's order
    runs: tuple[vd.Run, ...]
    missing: tuple[tuple[str, int], ...] = ()  # planned (variant, seed) without a record

    def of(self, variant: str) -> list[vd.Run]:
        return [r for r in self.runs if r.variant == variant]


@dataclass(frozen=True)
class Inputs:
    studies: tuple[Study, ...]  # the report's own studies, in plan order
    claims: tuple[tuple[Any, Study | None], ...] = ()  # each claim with its study (None: undefined)
    reported: tuple[claims_file.Reported, ...] = ()
    command: str = "python -m normlab.analysis.report"
    notes: tuple[str, ...] = field(default_factory=tuple)
    scope: str = ""  # what this report is when it is not the project's answer (a profile …)


def title(dataset: str) -> str:
    """MNIST, Fashion-MNIST, 'CIFAR-10 PROXY': the proxy is never called CIFAR-10 alone."""
    return TITLES.get(dataset, dataset)


def long_title(dataset: str) -> str:
    """The title with the dataset's note: 'CIFAR-10 PROXY (not CIFAR-10: JPEG copies …)'."""
    try:
        note = data.spec(dataset).note.removeprefix("PROXY, ")
    except NormlabError:
        note = ""
    return f"{title(dataset)} ({note})" if note else title(dataset)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(runs: Sequence[vd.Run], value=lambda r: r.acc, digits: int = 2) -> str:
    """'99.31 ± 0.08 (3)' over the runs that learned, naming the rest: '(2 of 3; 1 did not
    learn)'; '–' for none."""
    if not runs:
        return "–"
    g = vd.group("", runs, [value(r) for r in runs])
    stats = describe(g.usable)
    if not g.failed:
        return f"{vd.pm(stats, digits)} ({stats.n})"
    if not g.learned:
        return f"{vd.pm(stats, digits)} ({len(runs)}, none learned)"
    return f"{vd.pm(stats, digits)} ({stats.n} of {len(runs)}; {len(g.failed)} did not learn)"


# --- the summary -----------------------------------------------------------------------------


def main_study(studies: Sequence[Study], dataset: str) -> Study | None:
    """The first study of a dataset with a variant named after a plain norm (bn, gn …)."""
    for study in studies:
        if study.dataset == dataset and any(v in NORMS for v in study.variants):
            return study
    return None


def norm_table(studies: Sequence[Study]) -> str:
    datasets = list(DATASETS) + sorted({s.dataset for s in studies} - set(DATASETS))
    mains = {d: main_study(studies, d) for d in datasets}
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
    table = markdown(["norm", *(title(d) for d in datasets)], rows)
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


def hardware(runs: Sequence[vd.Run]) -> list[str]:
    by_host = Counter((r.host, r.device, r.precision) for r in runs)
    return [
        f"- {host}: {n} runs on {device}, {precision}"
        for (host, device, precision), n in sorted(by_host.items())
    ]


def shared(runs: Sequence[vd.Run]) -> str:
    """Say when runs shared their machine: their seconds include the waiting."""
    busy = [r for r in runs if r.concurrent > 1]
    if not busy:
        return ""
    return (
        f" ({len(busy)} runs trained up to {max(r.concurrent for r in busy)} at a time on one "
        "machine, so their seconds include the sharing)"
    )


def summary(inputs: Inputs, verdicts: Sequence[cl.Verdict]) -> str:
    runs = [r for s in inputs.studies for r in s.runs]
    planned = len(runs) + sum(len(s.missing) for s in inputs.studies)
    lines = [
        "## Summary",
        "",
        norm_table(inputs.studies),
        "",
        "**Claims of the five write-ups** (details in [Claims](#claims)):",
        "",
        *claims_summary(verdicts),
        "",
        f"**Runs**: {len(runs)} of {planned} planned runs have records; "
        f"training time {sum(r.seconds for r in runs) / 60:.1f} min in all{shared(runs)}.",
        "",
        "**Hardware**:",
        "",
        *(hardware(runs) or ["- no runs yet"]),
        "",
    ]
    return "\n".join(lines)


# --- a study ---------------------------------------------------------------------------------


def defining(params: dict) -> dict:
    """The params that make a variant: not the seed, nor where and how fast it ran."""
    return {k: v for k, v in params.items() if k not in ("seed", "device", "engine")}


def pairs(study: Study) -> list[tuple[str, str]]:
    """The comparisons a reader makes, found from the params: a variant that differs from a
    BatchNorm variant only in the norm (and groups) → vs it; a penalized variant that differs
    from an unpenalized one only in l1/l2 → vs it."""
    first = {v: defining(study.of(v)[0].params) for v in study.variants if study.of(v)}
    found = []
    for a, pa in first.items():
        for b, pb in first.items():
            diff = {k for k in pa if pa[k] != pb.get(k)}
            if a == b or not diff:
                continue
            if diff <= {"norm", "groups"} and pb["norm"] == "bn":
                found.append((a, b))
            elif diff <= {"l1", "l2"} and pb["l1"] == 0 and pb["l2"] == 0:
                found.append((a, b))
    return found


def verdict_lines(study: Study) -> list[str]:
    """Welch per pair on final test accuracy, Holm over the study's pairs (one family)."""
    found = pairs(study)
    if not found:
        return ["- no pair of variants here differs only in the norm or only in l1/l2."]
    groups = {v: vd.group(v, study.of(v), [r.acc for r in study.of(v)]) for v in study.variants}
    return vd.family(groups, found)


def study_table(study: Study) -> str:
    rows = []
    for variant, overrides in study.variants.items():
        runs = study.of(variant)
        g = vd.group(variant, runs, [r.acc for r in runs])
        stats = describe(g.usable)
        planned = len(runs) + sum(1 for v, _ in study.missing if v == variant)
        rows.append(
            [
                variant,
                overrides,
                f"{len(runs)}/{planned}",
                vd.pm(stats),
                "–" if not stats.n else f"{stats.median:.2f}",
                "–" if not stats.n else f"{stats.low:.2f}–{stats.high:.2f}",
                g.failed_text() or ("–" if runs else ""),
                usable(g, lambda r: r.best_acc),
                usable(g, lambda r: r.loss, 4),
                usable(g, lambda r: r.gap),
                usable(g, lambda r: r.seconds / max(1, len(r.history)), 1),
            ]
        )
    header = [
        "variant",
        "overrides",
        "runs",
        "final test acc %",
        "median",
        "min–max",
        "did not learn",
        "best-epoch acc %",
        "test loss",
        "train − test gap",
        "s / epoch",
    ]
    return markdown(header, rows)


def usable(g: vd.Group, value, digits: int = 2) -> str:
    """mean ± std of another number over the same runs as the group's accuracy statistics."""
    return vd.pm(describe([value(r) for r in vd.usable_runs(g.runs)]), digits)


def size(study: Study) -> str:
    runs = study.runs
    limits = sorted({r.params.get("limit", 0) for r in runs})
    images = ", ".join("all" if v == 0 else str(v) for v in limits) or "–"
    where = ", ".join(f"{n} on {d}" for d, n in sorted(Counter(r.device for r in runs).items()))
    planned = len(runs) + len(study.missing)
    return (
        f"{long_title(study.dataset)}; {plural(study.epochs, 'epoch')}; seeds "
        f"{', '.join(map(str, study.seeds))}; training images: {images}; "
        f"{len(runs)} of {planned} planned runs have records ({where or 'none'}); "
        f"training time {sum(r.seconds for r in runs) / 60:.1f} min"
    )


def study_figures(study: Study, out: Path) -> list[tuple[str, str]]:
    """Draw the study's figures into `out`; (file, caption) for each."""
    runs, order = list(study.runs), [v for v in study.variants if study.of(v)]
    head = f"{long_title(study.dataset)} — study {study.name}"
    made = [
        (f"{study.name}-curves.png", "loss and error per epoch, train and test (log scales)"),
        (f"{study.name}-accuracy.png", "final test error per variant, every seed"),
    ]
    figures.curves(runs, order, head, out / made[0][0])
    figures.accuracy(runs, order, head, out / made[1][0])
    if len(figures.batch_sizes(runs)) > 1:
        made.append((f"{study.name}-batch-size.png", "final test error vs batch size, per norm"))
        figures.batch(runs, f"{head}: error vs batch size", out / made[-1][0])
    if figures.has_features(runs):
        made.append(
            (
                f"{study.name}-features.png",
                "last block's feature percentiles per epoch: "
                "its norm's input and output (Wu & He, Fig. 3)",
            )
        )
        figures.features(runs, order, f"{head}: feature percentiles", out / made[-1][0])
    made.append(
        (
            f"{study.name}-confusion.png",
            "confusion matrices, errors only, summed over the seeds that learned",
        )
    )
    figures.confusion(runs, order, f"{head}: errors", out / made[-1][0])
    made.append(
        (f"{study.name}-misclassified.png", "misclassified test images, one seed per variant")
    )
    figures.misclassified(runs, order, f"{head}: misclassified", out / made[-1][0])
    return made


def write_bands(study: Study, out: Path) -> Path:
    path = out / BANDS_DIR / f"{study.name}.csv"
    order = [v for v in study.variants if study.of(v)]
    with atomic_path(path) as tmp:
        figures.bands(study.runs, order).to_csv(tmp, index=False, lineterminator="\n")
    return path


def study_section(study: Study, out: Path) -> str:
    head = [f"### Study `{study.name}`: {study.description}", "", f"Size: {size(study)}.", ""]
    if not study.runs:
        return "\n".join(head + ["No records yet: run `make study` for it.", ""])
    lines = head + [
        study_table(study),
        "",
        "Statistics over the runs that learned, or over all of a variant's runs when none did "
        f"(a run that ends below chance + {outputs.CHANCE_MARGIN:g} points, or diverged, did not "
        "learn and is named). "
        "*final*: after the last epoch; *best epoch*: the highest test accuracy at any epoch "
        "(picked on the test set, so optimistic). Gap = train − test accuracy (train measured "
        "with augmentation and dropout on).",
        "",
    ]
    for file, caption in study_figures(study, out):
        lines += [f"![{caption}]({file})", f"*{caption}*", ""]
    bands = write_bands(study, out).relative_to(out)
    lines += [
        f"Per-epoch mean and std of test accuracy and loss over the seeds that learned: "
        f"[`{bands}`]({bands}) (drawn with its band by `dvc plots show`).",
        "",
        "#### Verdicts",
        "",
        *verdict_lines(study),
        "",
    ]
    return "\n".join(lines)


def dataset_sections(studies: Sequence[Study], out: Path) -> list[str]:
    datasets = list(DATASETS) + sorted({s.dataset for s in studies} - set(DATASETS))
    sections = []
    for dataset in datasets:
        mine = [s for s in studies if s.dataset == dataset]
        lines = [f"## {long_title(dataset)}", ""]
        if not mine:
            lines += [f"No study of this report runs on {title(dataset)} yet.", ""]
        sections.append("\n".join(lines + [study_section(s, out) for s in mine]))
    return sections


# --- claims and replication ------------------------------------------------------------------


def judge_all(inputs: Inputs) -> list[cl.Verdict]:
    return [
        cl.judge(claim, study.runs, study.missing) if study else cl.judge(claim, (), (), False)
        for claim, study in inputs.claims
    ]


def claims_section(found: Sequence[cl.Verdict]) -> str:
    lines = [
        "## Claims",
        "",
        "Each claim of the write-ups as a test written in `studies/claims.yaml` before its runs "
        "landed (kinds: see `normlab/analysis/claims.py`). A claim over several pairs is one "
        "family, Holm-adjusted, supported only when every pair is.",
        "",
    ]
    for v in found:
        c = v.claim
        lines.append(
            f"- **{c.id}** ({c.source}; study `{c.study}`, {c.kind}): *{c.text}* — "
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
            runs = study.of(r.variant) if study else []
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
            "normlab final %",
            "normlab best-epoch %",
            "note",
        ]
        lines += [f"### Write-up {source}", "", markdown(header, rows), ""]
    if not inputs.reported:
        lines += ["No reported numbers in the claims file.", ""]
    return "\n".join(lines)


def provenance(inputs: Inputs) -> str:
    runs = [r for s in inputs.studies for r in s.runs]
    codes = sorted(Counter(r.code[:7] for r in runs).items())
    lines = [
        "## How these results were made",
        "",
        f"- report: `{inputs.command}`, from the run records alone (no retraining)",
        "- code (commit each run trained at): "
        + (", ".join(f"{c or '?'} ({n} runs)" for c, n in codes) or "–"),
        "- torch: " + (", ".join(sorted({r.torch for r in runs})) or "–"),
        "- precision: "
        + (
            ", ".join(
                f"{n} runs in {p}" for p, n in sorted(Counter(r.precision for r in runs).items())
            )
            or "–"
        ),
        *(f"- {note}" for note in inputs.notes),
        "",
    ]
    return "\n".join(lines)


def build(inputs: Inputs, out: Path) -> Path:
    """Write out/README.md, its figures and out/bands/*.csv; return the README path."""
    out.mkdir(parents=True, exist_ok=True)
    found = judge_all(inputs)
    head = [
        "# normlab results",
        "",
        "Generated by `make report` from the run records under `results/`; every number and "
        "verdict below is computed from them. Do not edit by hand.",
        "",
        *([f"**{inputs.scope}**", ""] if inputs.scope else []),
    ]
    parts = [
        "\n".join(head),
        summary(inputs, found),
        *dataset_sections(inputs.studies, out),
        claims_section(found),
        replication(inputs),
        provenance(inputs),
    ]
    write_text(out / "README.md", "\n".join(parts))
    return out / "README.md"


# --- reading the plan and the records --------------------------------------------------------


def study_view(name: str, spec: Any, planned: Sequence[Any], done: dict[str, Any]) -> Study:
    """A planned study with the runs that have records (relabelled with this study's names:
    a run shared by two studies has one record, under the study that trained it)."""
    runs, missing = [], []
    for run in planned:
        record = done.get(run.key)
        if record is None:
            missing.append((run.variant, run.seed))
        else:
            runs.append(dataclasses.replace(vd.run_of(record), study=name, variant=run.variant))
    overrides = {
        v: " ".join(f"{k}={val}" for k, val in o.items()) for v, o in spec.variants.items()
    }
    dataset = planned[0].params["dataset"] if planned else "?"
    return Study(
        name,
        spec.description,
        dataset,
        spec.epochs,
        tuple(spec.seeds),
        overrides,
        tuple(runs),
        tuple(missing),
    )


def _parser() -> argparse.ArgumentParser:
    from normlab.analysis import study

    parser = argparse.ArgumentParser(
        prog="python -m normlab.analysis.report", description=__doc__.split("\n\n")[0]
    )
    study.add_plan_arguments(parser)  # the same options as `study run`: the same runs
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: results/ for the "
        "default studies, results/<profile or file name>/ otherwise)",
    )
    parser.add_argument(
        "--claims", type=Path, default=claims_file.FILE, help="claims file (default: %(default)s)"
    )
    return parser


def _defining_files() -> dict[str, Path]:
    """study name → the studies/*.yaml file that defines it (the claims file aside)."""
    from normlab.analysis import studies as st

    defined: dict[str, Path] = {}
    for path in sorted(Path("studies").glob("*.yaml")):
        if path.resolve() != claims_file.FILE.resolve():
            for name in st.load_file(path).studies:
                defined.setdefault(name, path)
    return defined


def claim_studies(
    claims: Sequence[Any], own: dict[str, Study], everything: bool, base: dict, done: dict[str, Any]
) -> list[tuple[Any, Study | None]]:
    """Each claim with the study it reads: one of this report's own studies; and when
    `everything` (the default report, results/), any study of the other studies/*.yaml files
    at its default plan. None: no file defines the study yet."""
    from normlab.analysis import studies as st

    views: dict[str, Study | None] = dict(own)
    defined = _defining_files() if everything else {}
    for name in {c.study for c in claims} - set(views):
        if name in defined:
            other = st.plan(st.load_file(defined[name]), base, [name])
            views[name] = study_view(name, other.studies[name], other.runs, done)
        else:
            views[name] = None
    return [(c, views[c.study]) for c in claims if everything or c.study in own]


def main(argv: list[str] | None = None) -> None:
    from normlab.analysis import records as rec
    from normlab.analysis import studies as st
    from normlab.analysis import study

    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    plan = study.plan_from_args(args, argv)
    out = args.out or plan.out
    base = st.base_params()
    found = rec.read_all(st.RESULTS)
    if not out.resolve().is_relative_to(st.RESULTS.resolve()):
        found += rec.read_all(out)
    clashes = rec.conflicts(found)
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise NormlabError(clashes[0] + more)
    done = rec.done(found)
    views = tuple(
        study_view(n, s, [r for r in plan.runs if r.study == n], done)
        for n, s in plan.studies.items()
    )
    if not any(v.runs for v in views):
        raise NormlabError(
            f"no records for any of the {len(plan.runs)} planned runs: run "
            "`make study` first (with the same --file/--profile/--epochs/--set)"
        )
    claimed = claims_file.load(args.claims)
    everything = out.resolve() == st.RESULTS.resolve()
    with_studies = claim_studies(claimed.claims, {v.name: v for v in views}, everything, base, done)
    command = " ".join(["python -m normlab.analysis.report", *map(shlex.quote, argv)])
    scope = (
        ""
        if everything
        else (
            f"Studies of `{args.file}`"
            + (f", profile `{args.profile}`" if args.profile else "")
            + f", in `{out}/`: not the project's answer, which is `results/README.md`."
        )
    )
    own = {v.name for v in views}
    reported = tuple(r for r in claimed.reported if everything or r.study in own)
    inputs = Inputs(views, tuple(with_studies), reported, command, scope=scope)
    readme = build(inputs, out)
    print(f"wrote {readme}: {sum(len(v.runs) for v in views)} of {len(plan.runs)} planned runs")


if __name__ == "__main__":
    run_stage(main)
