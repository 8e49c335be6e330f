"""Which runs shared a machine, from the records' start and end times (records since issue 28).

A run's seconds include any sharing of its machine. The report says how much of its figures is
sharing (report/overlap.py); pricing (estimates.py, steptime.py) sets aside the records made while
more runs trained on a CPU host than it has cores: their seconds measure the crowd, not the run
(issue 30's lr check ran three runs to two cores; docs/performance.md). Processes that write no
record (benchmarks, tests) leave no trace here: what is set aside is a lower bound on the
crowding.
"""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar


class Timed(Protocol):
    """A run as a record or the report's view of one carries it."""

    @property
    def host(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def started(self) -> str | None: ...
    @property
    def ended(self) -> str | None: ...


T = TypeVar("T", bound=Timed)


def span(run: Timed) -> tuple[datetime, datetime] | None:
    """When the run trained; None for a record made before runs carried their times."""
    if not (run.started and run.ended):
        return None
    return datetime.fromisoformat(run.started), datetime.fromisoformat(run.ended)


def peak(run: Timed, runs: Sequence[Timed]) -> int:
    """The most runs (this one included) training at once on its host while it trained, from
    the times of the runs that have them; 0 when `run` has none."""
    return _peak(run, [(r.host, s) for r in runs if (s := span(r))])


def _peak(run: Timed, timed: list[tuple[str, tuple[datetime, datetime]]]) -> int:
    own = span(run)
    if own is None:
        return 0
    start, end = own
    events = []
    for host, (their_start, their_end) in timed:
        if host == run.host and their_start < end and their_end > start:
            events += [(max(their_start, start), 1), (min(their_end, end), -1)]
    most = active = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
        active += step
        most = max(most, active)
    return most


def cores(host: str) -> int | None:
    """The CPU count a host string names ("AMD EPYC (2 CPUs)", normlab.train.device.host)."""
    found = re.search(r"\((\d+) CPUs\)$", host)
    return int(found[1]) if found else None


def uncrowded(chosen: Sequence[T], runs: Sequence[Timed]) -> list[T]:
    """The runs of `chosen` that did not train on a crowded CPU, timed among `runs`: a CPU host
    on which, at some moment, more runs trained than it has cores (a GPU run's time is the
    GPU's, which `jobs` shares by design). Runs without times are kept: nothing says they were
    crowded."""
    timed = [(r.host, s) for r in runs if (s := span(r))]

    def crowded(run: Timed) -> bool:
        count = cores(run.host)
        return run.device == "cpu" and count is not None and _peak(run, timed) > count

    return [r for r in chosen if not crowded(r)]
