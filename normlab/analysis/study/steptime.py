"""Seconds per training step as a function of the batch size, read off the records made on a
machine: how estimates.py prices a run that has no record at its own batch size.

Scaling another batch size's epoch by the ratio of steps assumes a step costs the same at any
batch; scaling it by images, that a step costs nothing but its images. Neither holds: on the
2-CPU host a `cnn` step took 9.5 ms at batch 16 and 34 ms at 128, so a batch-2 epoch priced from
batch 16's by its 8× the steps came out about twice what it measured (issue 30: 26 h for the
small-batch study). A step is a fixed overhead plus a cost per image, and both are read off the
records, locally: between two measured batch sizes, the line through their step times; beyond
them, the line through the nearest two, so a batch-2 run leans on the smallest batches measured.

A step time is a record's `seconds` over its epochs × steps per epoch (evaluation after each
epoch included), the median over the records at each batch size (a run that shared a busy CPU
counts as one of several; estimates.py has set aside the records of a crowded CPU). It does not
depend on how many images an epoch has (`limit`, `val`), so records of any amount of data price
one another; it does depend on the data (the image size) and the net, and, on the resnet, on
the norm (`fit` says which records it takes).
"""

from collections import defaultdict
from dataclasses import dataclass
from statistics import median

from normlab.analysis.study.cost import steps_per_epoch
from normlab.analysis.study.records import Record


@dataclass(frozen=True)
class StepTime:
    """Median seconds per step measured at each batch size (at least two, ascending)."""

    sizes: tuple[int, ...]
    seconds: tuple[float, ...]

    def at(self, batch: int) -> float:
        """Seconds one step of `batch` images should take: on the line through the two
        measured batch sizes around it, or, beyond them, through the nearest two, its slope
        (the cost of an image) then at least 0: noise (a busy CPU) must not make a batch
        outside the measured ones cheaper than its nearest. Below the smallest measured size,
        at least that size's step scaled by images: a line whose fixed part came out negative
        would price small batches at nothing."""
        i = sum(size < batch for size in self.sizes[1:-1])  # the pair around it, or nearest
        (b0, b1), (t0, t1) = self.sizes[i : i + 2], self.seconds[i : i + 2]
        per_image = (t1 - t0) / (b1 - b0)
        if batch < b0:
            return max(t0 - max(per_image, 0.0) * (b0 - batch), t0 * batch / b0)
        if batch > b1:
            return t1 + max(per_image, 0.0) * (batch - b1)
        return t0 + per_image * (batch - b0)


def per_step(record: Record) -> float | None:
    """The record's seconds per training step; None for one that trained no step."""
    steps = record.params["recipe"]["epochs"] * steps_per_epoch(record.params)
    return record.seconds / steps if steps and record.seconds > 0 else None


def data_and_net(params: dict) -> tuple:
    """What a step's time depends on but its batch size: the data and the net."""
    return params["dataset"], params["recipe"]["model"]


def _measured(chosen: list[Record]) -> StepTime | None:
    """The records' median step time at each batch size; None with fewer than two sizes."""
    times: dict[int, list[float]] = defaultdict(list)
    for record in chosen:
        if (seconds := per_step(record)) is not None:
            times[record.params["recipe"]["batch_size"]].append(seconds)
    sizes = tuple(sorted(times))
    return StepTime(sizes, tuple(median(times[b]) for b in sizes)) if len(sizes) >= 2 else None


def fit(params: dict, known: list[Record], host: str) -> StepTime | None:
    """The step times of records like `params`'s run made on `host` (same data and net): its own
    norm's if they cover two batch sizes, one of them no larger than its own; else every norm's
    (below the batch sizes a norm was measured at, the fixed overhead, which the norm barely
    changes, dominates: bn 3.7, gn 3.9 ms a step at batch 2, issue 30's profile). None with
    fewer than two batch sizes measured."""
    alike = [r for r in known if r.host == host and data_and_net(r.params) == data_and_net(params)]
    own = _measured([r for r in alike if r.params["norm"] == params["norm"]])
    if own is not None and own.sizes[0] <= params["recipe"]["batch_size"]:
        return own
    return _measured(alike)
