"""The report's section on the batch-size curve (normlab.analysis.report.joined): its figure
(normlab.analysis.report.figures.batchsize, with the GroupNorm paper's ImageNet points on a
panel of their own), its table, what was joined from where, BN's feature percentiles at batch 2
vs 64, and the line that points results/README.md's `batch` section at it.

Every count is said in words as well as drawn: a batch size with no records yet reads
"n = 0 (pending)", so a reader never takes a missing point for a result. `curve` (joined's)
is here too, so that the report's cli reaches the curve through one module."""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from normlab.analysis.report import tables
from normlab.analysis.report.figures import batchsize, curves
from normlab.analysis.report.joined import BATCHES, HOME, STUDIES, Curve, curve, table
from normlab.analysis.study import plan as st

__all__ = ["curve", "links", "section"]  # curve: joined's

HEADING = "Batch-size curve"  # its anchor (#batch-size-curve) is what other reports link to
FIGURE = "batch-size-curve.png"
FEATURES = "batch-size-curve-features.png"
FEATURE_BATCHES = (2, 64)  # BN's features where its statistics are worst and at the recipe's


def per_batch(joined: Curve) -> str:
    """'2: 0 / 9 (pending), …, 16: 9 / 9': runs with records / planned, every norm together."""
    parts = []
    for b in joined.batches():
        got, planned = joined.count(b)
        parts.append(f"{b}: {got} / {planned}" + (" (pending)" if planned and not got else ""))
    return ", ".join(parts)


def lr_rule(joined: Curve) -> str:
    """'lr = 0.1 · batch / 64' when every planned run follows one linear rule."""
    rates = sorted({round(s.lr / s.batch * 64, 9) for s in joined.planned})
    return f"lr = {rates[0]:g} · batch / 64" if len(rates) == 1 else "lr per run as planned"


def recipe_text(joined: Curve) -> str:
    """The reference recipe in words, with the lr rule the planned runs follow."""
    p, r = joined.reference, joined.reference["recipe"]
    images = "all training images" if not p["limit"] else f"{p['limit']} training images"
    return (
        f"{tables.title(p['dataset'])}, `{r['model']}` ({r['order']}), {r['epochs']} epochs, "
        f"{r['schedule']} schedule, momentum {r['momentum']:g}"
        f"{' (Nesterov)' if r['nesterov'] else ''}, dropout {r['dropout']:g}, l1 {p['l1']:g}, "
        f"l2 {p['l2']:g}, {images}"
        + (f" ({p['val']} held out for val)" if p.get("val") else "")
        + f"; {lr_rule(joined)}"
    )


def sources(joined: Curve) -> list[str]:
    """Which study plans each batch size and where its records are. A record under another
    study's folder (results/runs/norms/ for `batch`'s batch 64) is that study's record of the
    very same run (same identity), which the planning study reads rather than retrains."""
    planned: dict[str, set[int]] = defaultdict(set)
    for s in joined.planned:
        planned[s.study].add(s.batch)
    folders: dict[int, set[Path]] = defaultdict(set)
    studies = {}
    for r in joined.runs:
        if r.source is not None:
            folders[batchsize.batch_of(r)].add(r.source.parent.parent)
            studies[batchsize.batch_of(r)] = r.study
    kept: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for b in sorted(folders):
        kept[tuple(sorted(f.as_posix() for f in folders[b]))].append(b)
    lines = [f"batch {_listed(b)}: planned by study `{n}`" for n, b in planned.items()]
    for where, batches in kept.items():
        other = sorted({Path(w).name for w in where} - {studies[batches[0]]})
        same = (
            f" (made by {'study' if len(other) == 1 else 'studies'} "
            f"{', '.join(f'`{o}`' for o in other)} for the same runs, which "
            f"`{studies[batches[0]]}` plans with the same params and so never retrains)"
            if other
            else ""
        )
        lines.append(
            f"batch {_listed(batches)}: records under " + ", ".join(f"`{w}/`" for w in where) + same
        )
    return lines


def _listed(numbers) -> str:
    return ", ".join(map(str, sorted(numbers)))


def features(joined: Curve, out: Path) -> list[str]:
    """BN's feature percentiles at FEATURE_BATCHES side by side, once both have records with
    features (Wu & He's Fig. 3 view of where BN's statistics go wrong); else why not yet."""
    bn = [
        r
        for r in joined.runs
        if r.params["norm"] == "bn" and batchsize.batch_of(r) in FEATURE_BATCHES
    ]
    have = {b: sum(batchsize.batch_of(r) == b for r in bn) for b in FEATURE_BATCHES}
    if not all(have.values()) or not curves.has_features(bn):
        now = ", ".join(f"n = {n} at batch {b}" for b, n in have.items())
        return [
            f"BN's feature percentiles at batch {' vs '.join(map(str, FEATURE_BATCHES))}: "
            f"drawn once both have records with features (now {now}).",
            "",
        ]
    order = list(dict.fromkeys(r.variant for r in sorted(bn, key=batchsize.batch_of)))
    title = f"BN at batch {' vs '.join(map(str, FEATURE_BATCHES))}: feature percentiles"
    curves.features(bn, order, title, out / FEATURES)
    caption = (
        f"BN at batch {' and '.join(map(str, FEATURE_BATCHES))}: the last block's norm input "
        "(top) and output (bottom), percentiles per epoch, mean over the seeds that learned"
    )
    return [f"![{caption}]({FEATURES})", f"*{caption}*", ""]


def section(joined: Curve, out: Path) -> str:
    """The report's section: figure, table, what was joined and from where, BN's features."""
    batches = joined.batches()
    counts = {b: "n={}/{}".format(*joined.count(b)) for b in batches}
    counts |= {b: f"{counts[b]}\npending" for b in batches if joined.count(b)[0] == 0}
    head = f"MNIST: final test error vs batch size, studies {' and '.join(STUDIES)} joined"
    batchsize.figure(joined.runs, head, out / FIGURE, batches, counts, paper=True)
    span = f"{batches[0]}–{batches[-1]}"
    caption = (
        f"Left: final test error % vs batch size ({span}, log2 axis) per norm on MNIST, every "
        "seed a point and the seeds' mean a line; under each batch size n = runs with records "
        "/ planned, all norms; one recipe throughout (the list under the table), "
        f"{lr_rule(joined)}. Right: the GroupNorm paper's ImageNet ResNet-50 points (another "
        "dataset and network, on an axis of its own)"
    )
    left = [f"{r.study}/{r.variant} s{r.seed}" for r in joined.other_recipe]
    lines = [
        f"## {HEADING}",
        "",
        f"Final test error per norm over batch {span}, the runs of studies "
        + " and ".join(f"`{n}`" for n in STUDIES)
        + " joined. Runs with records / planned per batch size (every norm together): "
        + per_batch(joined)
        + ".",
        "",
        f"![{caption}]({FIGURE})",
        f"*{caption}*",
        "",
        table(joined),
        "",
        "Final test error % (100 − final test accuracy), mean ± sd over the seeds that learned "
        "(n); *n = 0 (pending)*: planned, no record yet.",
        "",
        "- **Recipe** (every joined run has it: their params differ only in the norm and its "
        f"groups, the batch size, the lr and the seed): {recipe_text(joined)}.",
        *(f"- {line}." for line in sources(joined)),
        (
            f"- **Left out**: {len(left)} records of another recipe ({', '.join(left)})."
            if left
            else "- No record of another recipe was offered to the join."
        ),
        "- Joined runs of another report's studies ("
        + ", ".join(f"`{n}`" for n in STUDIES if n != HOME)
        + ") are counted in that report's summary, not in this one's.",
        "- Right panel: Wu & He (2018), ResNet-50 on ImageNet, top-1 validation error at 32 and "
        "2 images per GPU (BN 23.6 → 34.7 %, GN 24.1 → 24.1 %). Another dataset, network and "
        "scale: its shape (BN worse as its batch shrinks, GN flat) is what MNIST's can be set "
        "beside, never its level.",
        "",
        *features(joined, out),
    ]
    return "\n".join(lines)


def links(built: Sequence[Path], defined: Mapping[str, Path]) -> dict[str, str]:
    """study name → the line its section in results/README.md gets pointing at the curve: for
    the other STUDIES, once the report with the curve has been built."""
    if HOME not in defined:
        return {}
    readme = st.results_dir(defined[HOME], None) / "README.md"
    if not any(Path(b).resolve() == readme.resolve() for b in built):
        return {}
    target = f"{readme.relative_to(st.RESULTS).as_posix()}#{HEADING.lower().replace(' ', '-')}"
    line = (
        f"Joined with study `{HOME}` (`{defined[HOME]}`) into one curve of final test error "
        f"over batch {BATCHES[0]}–{BATCHES[-1]}, with a table of mean ± sd (n) per norm and "
        f"batch size: [`{readme.parent}/` → {HEADING}]({target})."
    )
    return {n: line for n in STUDIES if n != HOME}
