"""`run --deadline`: which pending runs may start before it, and, with `--resume-later`, the
stop at it.

Without --resume-later, a run starts only if it should end before the deadline (priced as the
ETA is, estimates.py; a run with no price starts while the deadline has not passed), and a run
started trains to its end, deadline or not. With it, the deadline is a hard stop, so that a
session's last minutes still train: when no pending run should end in time, the first one (the
longest) of which an epoch should end in time starts anyway, and at the deadline every worker
still running is stopped. A stopped worker loses the epoch in progress only: the epochs before
it are in the run's checkpoint in normlab's cache (normlab.train.checkpoint, saved at each
epoch's end), from which the next session's rerun resumes. That pays only where the cache
outlives the session: the same machine, or NORMLAB_CACHE on a disk that stays; a lent machine
given back takes its cache with it.

Either way a run that resumes is priced for the epochs its checkpoint lacks, so a run stopped
last session fits a shorter deadline this one.
"""

import time
from collections.abc import Callable

import torch

from normlab.analysis.study.estimates import estimate
from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.records import Record
from normlab.train import checkpoint


def epochs_checkpointed(params: dict) -> int:
    """Epochs that the run's checkpoint in normlab's cache holds: 0 with none, or with one that
    cannot be read or belongs to other code (the run would start afresh)."""
    fingerprint = checkpoint.fingerprint(params)
    path = checkpoint.cache_path(fingerprint)
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # corrupt or foreign, as checkpoint.restore judges it: no epochs kept
        return 0
    return len(state["history"]) if state.get("fingerprint") == fingerprint else 0


def stopped(run: PlannedRun) -> str:
    """What to say of a run whose worker was stopped at the deadline."""
    done, epochs = epochs_checkpointed(run.params), run.params["recipe"]["epochs"]
    return (
        f"stopped at the deadline: {run.label}: {done} of {epochs} epochs checkpointed; "
        "rerun to continue"
    )


def anyway(run: PlannedRun) -> str:
    """What to say of a run that starts under --resume-later though it should not end in time."""
    return f"{run.label} should not end before the deadline: it starts anyway, to resume later"


class Deadline:
    """A time.monotonic() by which runs should end (None: no deadline), and whether it is a
    hard stop (`resume_later`). Prices come from the records made on `host` (this machine)."""

    def __init__(
        self, at: float | None, known: list[Record], host: str, resume_later: bool = False
    ):
        self.at, self.known, self.host, self.resume_later = at, known, host, resume_later
        self.prices: dict[str, tuple[float | None, int]] = {}  # by label, until forget()

    def forget(self) -> None:
        """A record landed: it may price the runs left better."""
        self.prices.clear()

    def left(self, run: PlannedRun) -> tuple[float | None, int]:
        """Seconds `run` should still take here (None: no price) and its epochs left: those its
        checkpoint lacks."""
        if run.label not in self.prices:
            epochs = run.params["recipe"]["epochs"]
            left = max(epochs - epochs_checkpointed(run.params), 0)
            seconds = estimate(run.params, self.known, self.host)
            self.prices[run.label] = None if seconds is None else seconds * left / epochs, left
        return self.prices[run.label]

    def tests(self) -> list[Callable[[PlannedRun], bool]]:
        """What a pending run must pass to start, in turn: end before the deadline; else, with
        --resume-later, end an epoch before it (only once no pending run passes the first)."""
        hard = self.resume_later and self.at is not None
        return [self.fits, self.fits_an_epoch] if hard else [self.fits]

    def fits(self, run: PlannedRun) -> bool:
        """Whether `run` should end before the deadline; one with no price fits until then."""
        if self.at is None:
            return True
        return time.monotonic() + (self.left(run)[0] or 0.0) < self.at

    def fits_an_epoch(self, run: PlannedRun) -> bool:
        """With --resume-later: whether an epoch of `run` should end before the deadline, so
        that starting it leaves something in its checkpoint for the next session."""
        if self.at is None:
            return False
        seconds, left = self.left(run)
        return time.monotonic() + (seconds or 0.0) / max(left, 1) < self.at

    def passed(self) -> bool:
        """Whether running workers must stop now: --resume-later's deadline has come."""
        return self.resume_later and self.at is not None and time.monotonic() >= self.at

    def not_started(self, count: int) -> str:
        """The last line of a runner that left `count` runs unstarted for the deadline."""
        runs = f"{count} run{'s' * (count != 1)}"
        if self.resume_later:
            return f"deadline: {runs} not started, as none would end an epoch before it " + (
                "(rerun to continue)"
            )
        return f"deadline: {runs} not started, as none would end before it (rerun to continue)"
