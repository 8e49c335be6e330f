"""How the report writes names and numbers: dataset titles (the proxy never as CIFAR-10 alone),
markdown tables, and 'mean ± std (n)' cells that name the runs that did not learn."""

from collections.abc import Sequence
from typing import Any

from normlab.analysis.claims import notation
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.claims.stats import describe
from normlab.analysis.report.views import StudyView
from normlab.data import specs
from normlab.errors import NormlabError

DATASETS = ("mnist", "fashion-mnist", "cifar10-proxy")  # always in the report, runs or not
TITLES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10-proxy": "CIFAR-10 PROXY",
    "cifar10": "CIFAR-10",
}


def datasets(studies: Sequence[StudyView]) -> list[str]:
    """The report's datasets in order: DATASETS, then any other a study runs on."""
    return list(DATASETS) + sorted({s.dataset for s in studies} - set(DATASETS))


def title(dataset: str) -> str:
    """MNIST, Fashion-MNIST, 'CIFAR-10 PROXY': the proxy is never called CIFAR-10 alone."""
    return TITLES.get(dataset, dataset)


def long_title(dataset: str) -> str:
    """The title with the dataset's note: 'CIFAR-10 PROXY (not CIFAR-10: JPEG copies …)'."""
    try:
        note = specs.spec(dataset).note.removeprefix("PROXY, ")
    except NormlabError:
        note = ""
    return f"{title(dataset)} ({note})" if note else title(dataset)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cell(runs: Sequence[vd.Outcome], value=lambda r: r.acc, digits: int = 2) -> str:
    """'99.31 ± 0.08 (3)' over the runs that learned, naming the rest: '(2 of 3; 1 did not
    learn)'; '–' for none."""
    if not runs:
        return "–"
    g = vd.group("", runs, [value(r) for r in runs])
    stats = describe(g.usable)
    if not g.failed:
        return f"{notation.pm(stats, digits)} ({stats.n})"
    if not g.learned:
        return f"{notation.pm(stats, digits)} ({len(runs)}, none learned)"
    return f"{notation.pm(stats, digits)} ({stats.n} of {len(runs)}; {len(g.failed)} did not learn)"


def alongside(g: vd.VariantRuns, value, digits: int = 2) -> str:
    """mean ± std of another number over the same runs as the group's accuracy statistics."""
    return notation.pm(describe([value(r) for r in vd.usable_runs(g.runs)]), digits)
