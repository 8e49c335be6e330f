"""Which runs trained at the same time on the same machine, from the records' start and end times.

A run's seconds include any sharing of its machine, so "s/epoch" compares fairly only between
runs that shared alike. Records before issue 28 carry only `concurrent`: the runs active when
the run *started* (the nine H200 runs say 1 … 9 though all nine trained together), which says
nothing of runs started after it. Records since carry `started`/`ended` (UTC), from which the
overlap is computed (normlab.analysis.study.crowding); for the older ones the report says what it
cannot know.
"""

from collections.abc import Sequence

from normlab.analysis.claims.verdicts import Outcome
from normlab.analysis.report.tables import plural
from normlab.analysis.study.crowding import peak, span


def shared(runs: Sequence[Outcome]) -> str:
    """The Summary's note on shared machines: from times where runs have them, else from the
    count at start (and that it is only that)."""
    timed = [r for r in runs if span(r)]
    untimed = [r for r in runs if not span(r) and r.concurrent > 1]
    notes = []
    if untimed:
        others = max(r.concurrent for r in untimed) - 1
        notes.append(
            f"{plural(len(untimed), 'run')} started while up to {plural(others, 'other')} "
            "trained on their machine (counted at start only)"
        )
    peaks = [peak(r, runs) for r in timed]
    busy = [p for p in peaks if p > 1]
    if busy:
        notes.append(
            f"{plural(len(busy), 'run')} overlapped others, up to {max(busy)} at once (from times)"
        )
    if not notes:
        return ""
    return f" ({'; '.join(notes)}: their seconds include the sharing)"


def provenance(runs: Sequence[Outcome]) -> str:
    """What the times say and what they cannot say, for 'How these results were made'."""
    timed = [r for r in runs if span(r)]
    busy = [p for p in (peak(r, runs) for r in timed) if p > 1]
    said = (
        f"{len(busy)} of them trained beside another run on the same host (up to {max(busy)} "
        "at once)"
        if busy
        else "none of them shared its host with another timed run"
    )
    older = len(runs) - len(timed)
    head = f"overlap, from start and end times: {len(timed)} of {len(runs)} runs have them"
    head += f"; {said}" if timed else ""
    if not older:
        return head + "."
    return (
        f"{head}. For the other {older} (records before the times), only `concurrent` is known, "
        "the runs active when each started: whether runs started later shared their machine, "
        "and so how much of their seconds and s/epoch is sharing, cannot be known."
    )
