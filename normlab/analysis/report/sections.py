"""The report's section per dataset, and in it one per study: its size, a table of every
variant, its figures and seed bands, and the verdicts on the pairs a reader compares."""

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from normlab.analysis.claims import notation
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.claims.pinned import shown
from normlab.analysis.claims.stats import describe
from normlab.analysis.report.figures import gallery
from normlab.analysis.report.tables import alongside, datasets, long_title, markdown, plural, title
from normlab.analysis.report.views import StudyView
from normlab.analysis.study.records import PLACE_AND_SPEED
from normlab.train import metrics


def defining(params: dict) -> dict:
    """The params that make a variant: not the seed, nor where and how fast it ran."""
    return {k: v for k, v in params.items() if k not in ("seed", *PLACE_AND_SPEED)}


def pairs(study: StudyView) -> list[tuple[str, str]]:
    """The comparisons a reader makes, found from the params: a variant that differs from a
    BatchNorm variant only in the norm (and groups) → vs it; a penalized variant that differs
    from an unpenalized one only in l1/l2 → vs it; a variant that changes the recipe
    (`train.*` overrides) and differs only there from one that keeps the study's → vs it."""
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
            elif diff == {"recipe"} and _changes_recipe(study, a) and not _changes_recipe(study, b):
                found.append((a, b))
    return found


def _changes_recipe(study: StudyView, variant: str) -> bool:
    return "train." in study.variants[variant]


def verdict_lines(study: StudyView) -> list[str]:
    """Welch per pair on final test accuracy, Holm over the study's pairs (one family)."""
    found = pairs(study)
    if not found:
        return ["- no pair of variants here differs only in the norm or only in l1/l2."]
    groups = {v: vd.group(v, study.of(v), [r.acc for r in study.of(v)]) for v in study.variants}
    return vd.family(groups, found)


# What the best-epoch column is, without and with a validation split (metrics.best_epoch).
BEST = {
    False: "the highest test accuracy at any epoch (picked on the test set, so optimistic)",
    True: "the test accuracy at the epoch of highest val accuracy (picked on val, not test)",
}


def has_val(runs: Sequence[vd.Outcome]) -> bool:
    """Whether the runs held out a validation split: every run with numbers logged val/acc."""
    measured = [r for r in runs if r.history]
    return bool(measured) and all("val/acc" in r.history[-1] for r in measured)


def final_val(run: vd.Outcome) -> float:
    return run.history[-1]["val/acc"]


def study_table(study: StudyView) -> str:
    rows = []
    val = has_val(study.runs)
    # Seconds per epoch compare only on one device: where a study's runs ran on several, each
    # variant's cell names its own.
    mixed = len({r.device for r in study.runs}) > 1
    for variant, overrides in study.variants.items():
        runs = study.of(variant)
        g = vd.group(variant, runs, [r.acc for r in runs])
        seconds = alongside(g, lambda r: r.seconds / max(1, len(r.history)), 1)
        if mixed and runs:
            seconds += f" ({', '.join(sorted({r.device for r in runs}))})"
        stats = describe(g.usable)
        planned = len(runs) + sum(1 for v, _ in study.missing if v == variant)
        seeds = f" ({shown([r.seed for r in runs])})" if runs else ""
        rows.append(
            [
                variant,
                overrides,
                f"{len(runs)}/{planned}{seeds}",
                notation.pm(stats),
                *([alongside(g, final_val)] if val else []),
                "–" if not stats.n else f"{stats.median:.2f}",
                "–" if not stats.n else f"{stats.low:.2f}–{stats.high:.2f}",
                g.failed_text() or "–",
                alongside(g, lambda r: r.best_acc),
                alongside(g, lambda r: r.loss, 4),
                alongside(g, lambda r: r.gap),
                seconds,
            ]
        )
    header = [
        "variant",
        "overrides",
        "runs (seeds)",
        "final test acc %",
        *(["final val acc %"] if val else []),
        "median",
        "min–max",
        "did not learn",
        "best-epoch acc %",
        "test loss",
        "train − test gap",
        "s / epoch",
    ]
    return markdown(header, rows)


def size(study: StudyView) -> str:
    runs = study.runs
    limits = sorted({r.params.get("limit", 0) for r in runs})
    images = ", ".join("all" if v == 0 else str(v) for v in limits) or "–"
    where = ", ".join(f"{n} on {d}" for d, n in sorted(Counter(r.device for r in runs).items()))
    planned = len(runs) + len(study.missing)
    seeds = ", ".join(map(str, study.seeds)) + "".join(
        f" ({v}: {', '.join(map(str, s))})" for v, s in study.variant_seeds.items()
    )
    return (
        f"{long_title(study.dataset)}; {plural(study.epochs, 'epoch')}; seeds "
        f"{seeds}; training images: {images}; "
        f"{len(runs)} of {planned} planned runs have records ({where or 'none'}); "
        f"training time {sum(r.seconds for r in runs) / 60:.1f} min"
    )


def val_note(study: StudyView) -> list[str]:
    """For a study whose runs hold out a validation split: what is read on it."""
    if not has_val(study.runs):
        return []
    held = sorted({r.params.get("val", 0) for r in study.runs if r.history})
    return [
        f"These runs hold out a validation split (the last {', '.join(map(str, held))} training "
        "images, `data.val`), and the choices made from them (the lr check) are read on the "
        "final **val** accuracy, never on test: test accuracy stands beside it as description "
        "only.",
        "",
    ]


def study_section(study: StudyView, out: Path, see: str = "", options: str = "") -> str:
    """One study's section; `options`: the study options (--file, --profile) of its report, for
    the command that trains its runs."""
    head = [f"### Study `{study.name}`: {study.description}", "", f"Size: {size(study)}.", ""]
    if study.not_run:
        head += [f"**Not run**: {study.not_run}.", ""]
    if not study.runs:
        run = f'make study ARGS="{options}--study {study.name}"'
        return "\n".join(head + ([] if study.not_run else [f"No records yet: run `{run}`.", ""]))
    lines = head + [
        study_table(study),
        "",
        "Statistics over the runs that learned, or over all of a variant's runs when none did "
        f"(a run that ends below chance + {metrics.CHANCE_MARGIN:g} points, or diverged, did not "
        "learn and is named). "
        f"*final*: after the last epoch; *best epoch*: {BEST[has_val(study.runs)]}. "
        "Gap = train − test accuracy (train measured with augmentation and dropout on).",
        "",
        *val_note(study),
    ]
    for file, caption in gallery.study_figures(study, out):
        lines += [f"![{caption}]({file})", f"*{caption}*", ""]
    lines += [see, ""] if see else []
    bands = gallery.write_bands(study, out).relative_to(out)
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


def dataset_sections(
    studies: Sequence[StudyView],
    out: Path,
    see: Mapping[str, str] | None = None,
    options: str = "",
) -> list[str]:
    """One section per dataset; `see`: study → a line its section adds (a link elsewhere);
    `options`: the report's --file/--profile, as `make study` takes them ("" or ending in " ")."""
    see = see or {}
    sections = []
    for dataset in datasets(studies):
        mine = [s for s in studies if s.dataset == dataset]
        lines = [f"## {long_title(dataset)}", ""]
        if not mine:
            lines += [f"No study of this report runs on {title(dataset)} yet.", ""]
        sections.append(
            "\n".join(lines + [study_section(s, out, see.get(s.name, ""), options) for s in mine])
        )
    return sections
