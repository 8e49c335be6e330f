"""A runner's side of a checkout shared with other runners: the leases it holds, the runs the
others recorded meanwhile, and its summary file for the live view and `study status`.

Several runners (`make study` twice, SLURM array tasks, hosts on NFS) plan the same runs; each
takes a run only under its lease (normlab.analysis.study.leases) and, before training one, reads the
records others wrote since it planned, so a run one of them recorded is not trained again.
"""

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from normlab.analysis.study import leases, progress, records, store
from normlab.analysis.study.leases import Lease, Leases
from normlab.analysis.study.plan import RESULTS, PlannedRun
from normlab.analysis.study.records import Record
from normlab.errors import NormlabError
from normlab.io import write_json

Taken = Literal["taken", "held", "recorded"]


class Share:
    """The leases this runner holds (by run label), and which runs have records."""

    def __init__(
        self,
        the_leases: Leases,
        known: list[Record],
        say: Callable[[str], None],
        folder: Path = progress.FOLDER,
        results: Path = RESULTS,
    ):
        self.leases, self.known, self.say = the_leases, known, say
        self.folder, self.results = folder, results  # progress files; records to watch
        self.held: dict[str, tuple[Lease, str]] = {}  # run label → its lease, identity key
        self.recorded = set(records.done(known))  # identity keys of runs with a record
        self.seen = {r.source for r in known}  # record files read
        self.beat_at = 0.0  # time.monotonic() of the next heartbeat

    def clock(self) -> float:
        """The file server's time now: read once for a look over many runs."""
        return leases.server_now(self.leases.folder)

    def take(self, run: PlannedRun, now: float) -> Taken:
        """Take `run`'s lease: "taken" (this runner trains it), "held" (another runner holds
        it), or "recorded" (another runner recorded it since this one planned)."""
        if run.label in self.held:
            return "taken"
        lease = self.leases.take(run.key, run.label, now)
        if lease is None:
            return "held"
        self.held[run.label] = lease, run.key
        self.read_news()
        if run.key in self.recorded:
            self.let_go(run.label)
            return "recorded"
        return "taken"

    def job_fields(self, run: PlannedRun) -> dict:
        """What the run's worker needs to keep its lease and progress file fresh."""
        lease = self.held[run.label][0]
        return {
            "lease": str(lease.path),
            "token": lease.token,
            "progress": str(progress.run_path(self.folder, run.key)),
            "beat_s": leases.beat_every(self.leases.expiry_s),
        }

    def running_left(self, runs: Iterable[PlannedRun]) -> dict[str, float]:
        """Seconds each of these runs under way still needs, by label, as its progress file
        says; runs without a file or a pace yet are left out (their price stands)."""
        left = {}
        for run in runs:
            with contextlib.suppress(OSError, ValueError):
                path = progress.run_path(self.folder, run.key)
                pace = progress.seconds_left(json.loads(path.read_text()))
                if pace is not None:
                    left[run.label] = pace[0]
        return left

    def add(self, record: Record) -> Record:
        """A record that landed: its run is done."""
        self.known.append(record)
        self.seen.add(record.source)
        self.recorded.add(record.identity())
        return record

    def read_news(self) -> None:
        """Records and divergence records other runners wrote since this one looked."""
        for path in sorted(self.results.rglob("s*.json")):
            if path in self.seen:
                continue
            self.seen.add(path)
            try:
                if store.RECORD_NAME.match(path.name):
                    self.add(store.read(path))
                elif store.DIVERGED_NAME.match(path.name):
                    self.recorded.add(store.read(path, records.Diverged).identity())
            except NormlabError as err:  # someone's broken file: the report will name it too
                self.say(f"warning: {err}")

    def let_go(self, label: str) -> None:
        """Release the run's lease, and its progress file with it, if this runner holds it."""
        lease, key = self.held.pop(label, (None, ""))
        if lease is not None and leases.release(lease):
            progress.run_path(self.folder, key).unlink(missing_ok=True)

    def holds(self, label: str) -> bool:
        """Whether this runner still holds the run's lease (no other runner took it over)."""
        return label in self.held and leases.held(self.held[label][0])

    def lost(self, label: str) -> None:
        """Another runner took the run over: its lease and progress file are that one's."""
        self.held.pop(label, None)

    def beat(self, summary: Callable[[], dict]) -> None:
        """Every few seconds: touch the leases held, rewrite this runner's summary file."""
        if time.monotonic() < self.beat_at:
            return
        for lease, _ in self.held.values():
            leases.beat(lease)
        progress.remove_stale(self.folder, self.leases.expiry_s)  # of runners that died
        about = {"host": socket.gethostname(), "pid": os.getpid()}
        write_json(self.summary_path(), {**about, **summary(), "heartbeat": progress.utc_now()})
        self.beat_at = time.monotonic() + leases.beat_every(self.leases.expiry_s)

    def changed(self) -> None:
        """The runner's running runs changed: its summary is rewritten at the next beat."""
        self.beat_at = 0.0

    def summary_path(self) -> Path:
        return progress.runner_path(self.folder, self.leases.token)

    def close(self) -> None:
        """The runner ends: give back the leases of the runs it leaves unfinished."""
        for label in list(self.held):
            self.let_go(label)
        self.summary_path().unlink(missing_ok=True)
