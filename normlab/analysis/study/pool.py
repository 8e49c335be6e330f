"""Runs the planned runs of a study, N at a time, each in its own worker process.

Parallelism rests on nothing but child processes: the parent starts up to N workers
(`python -m normlab.analysis.study.worker '<job json>'`), each trains one run in-process with the
training library and writes its record atomically, and the parent refills a slot whenever a
worker ends. A worker that dies (killed, crashed) is reported in one line and its run is
started once more; it resumes from its per-epoch checkpoint in normlab's cache
(`checkpoint.cache_path`), so neither a dead worker nor a killed study trains a run from scratch
twice. A worker that stops with a user error (exit 2: a diverged run, a bad param) is not
retried: it would fail the same way; one that left a divergence record is reported as diverged
(a result: planning counts it done), not as failed.

With `commit`, each record (or divergence record) is committed as it lands (commits.py).
Runners sharing a checkout (or its filesystem) share the work: a runner takes each run under a
lease (leases.py), longest first (cost.py), skips runs others hold,
and, when only those are left, waits for them: one that another runner recorded meanwhile is
done, one whose lease expired it takes over. Workers log to .normlab/logs/ and keep progress
files that the live view (live.py) draws.
"""

import os
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path

from normlab.analysis.study import deadline as deadlines
from normlab.analysis.study import leases, progress, store
from normlab.analysis.study.commits import commit_record
from normlab.analysis.study.cost import longest_first
from normlab.analysis.study.deadline import Deadline
from normlab.analysis.study.estimates import eta
from normlab.analysis.study.leases import Leases
from normlab.analysis.study.live import View
from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.processes import Active, exit_reason, last_line, spawn
from normlab.analysis.study.records import Record
from normlab.analysis.study.sharing import Share
from normlab.analysis.study.worker import LEASE_LOST, Job, ensure_data
from normlab.train import checkpoint

USER_ERROR = 2  # run_stage's exit code for a NormlabError: deterministic, not worth a retry
POLL_S = 0.2
LOOK_S = 2.0  # with only runs others hold left, look for one recorded or expired this often
LOGS = Path(".normlab/logs")  # worker logs, a folder per runner: in the checkout, for any host


class Runner:
    """Keeps `jobs` workers busy until every run has a record (its own, or another runner's)
    or has failed."""

    def __init__(
        self,
        runs: list[PlannedRun],
        share: Share,
        jobs: int,
        *,
        host: str,
        view: View,
        commit: bool = False,
        deadline: float | None = None,
        resume_later: bool = False,
        done_before: int = 0,
    ):
        """`deadline`: a time.monotonic() by which the runs started should end (priced from
        the records made on `host`, this machine), a hard stop with `resume_later`
        (deadline.py); `done_before`: the plan's runs recorded already (for runs done / total)."""
        self.pending = deque((run, 1) for run in longest_first(runs))
        self.share, self.known = share, share.known
        self.jobs, self.commit, self.view = jobs, commit, view
        self.deadline = Deadline(deadline, share.known, host, resume_later)
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{socket.gethostname()}-{os.getpid()}"
        self.logs = LOGS / stamp
        self.host = host  # the machine whose records price the runs here
        self.active: list[Active] = []
        self.failed: list[str] = []
        self.diverged: list[str] = []  # exit 2 with a divergence record: a result, not a failure
        self.elsewhere: list[str] = []  # recorded by another runner meanwhile
        self.stopped: list[str] = []  # stopped at the deadline (--resume-later): to resume
        self.waiting = 0  # pending runs that other runners held at the last look
        self.look_at = 0.0  # time.monotonic() of the next look at them
        self.started = self.finished = 0
        self.total, self.done_before = len(runs), done_before

    def say(self, line: str) -> None:
        self.view.say(line)

    def start(self, run: PlannedRun, attempt: int) -> None:
        job = Job(
            run.study,
            run.variant,
            run.seed,
            run.params,
            str(run.path),
            concurrent=len(self.active) + 1,
            **self.share.job_fields(run),
        )
        log = self.logs / f"{run.study}-{run.variant}-s{run.seed}.log"
        process = spawn(job, log)
        resume = checkpoint.cache_path(checkpoint.fingerprint(run.params)).exists()
        note = ", resumes from its checkpoint" if resume else ""
        if attempt == 1:
            self.started += 1
            what = f"start {self.started}/{self.total} {run.label} (pid"
        else:
            what = f"restart {run.label} (attempt {attempt}, pid"
        self.say(f"{what} {process.pid}, log {log}{note})")
        self.active.append(Active(run, attempt, process, time.monotonic(), log))
        self.share.changed()

    def finish(self, slot: Active, code: int) -> None:
        run, seconds = slot.run, time.monotonic() - slot.started
        if code == 0 and run.path.exists():
            self.share.let_go(run.label)
            self.recorded(run, store.read(run.path), seconds)
            return
        if code == LEASE_LOST:  # a stall outlived its lease: the runner that took it records it
            self.share.lost(run.label)
            self.say(f"lost {run.label} after {seconds:.0f} s{last_line(slot.log)}")
            return
        reason = exit_reason(code) + last_line(slot.log)
        marker = store.diverged_path(run.path)
        if code == USER_ERROR and marker.exists():
            self.share.let_go(run.label)
            self.say(
                f"diverged {run.label} after {seconds:.0f} s ({reason}); {marker} counts it "
                "as done (delete it to retry)"
            )
            self.diverged.append(run.label)
            if self.commit:  # a result too: a clone must not train it again to learn that
                commit_record([marker], f"record: {run.label}: diverged", self.say)
            return
        if code != USER_ERROR and slot.attempt == 1 and not self.share.holds(run.label):
            self.share.lost(run.label)
            self.say(f"lost {run.label}: its worker died and another runner took the run over")
        elif code != USER_ERROR and slot.attempt == 1:  # its lease stays held for the retry
            self.say(
                f"worker for {run.label} died after {seconds:.0f} s ({reason}); "
                "starting it once more"
            )
            self.pending.appendleft((run, 2))
        else:
            self.share.let_go(run.label)
            self.say(f"failed {run.label} after {seconds:.0f} s ({reason})")
            self.failed.append(run.label)

    def recorded(self, run: PlannedRun, record: Record, seconds: float) -> None:
        """The run's worker wrote its record: say so (with the time left), commit it."""
        self.share.add(record)
        self.deadline.forget()  # the new record may price the runs left better
        self.finished += 1
        self.say(
            f"done {self.finished}/{self.total} {run.label}: "
            f"{record.final.acc:.2f} % in {record.seconds:.1f} s of training "
            f"({seconds:.0f} s in all) → {run.path}; {self.eta()}"
        )
        if self.commit:
            commit_record(
                [p for p in (store.sidecar(run.path), run.path) if p.exists()],
                f"record: {run.label}: {record.final.acc:.2f}%",
                self.say,
            )

    def eta(self) -> str:
        """The runs to go: pending ones at their price, running ones at their own pace."""
        running = [a.run for a in self.active]
        left = [r for r, _ in self.pending] + running
        return eta(left, self.known, self.jobs, self.host, self.share.running_left(running))

    def next_run(self) -> tuple[PlannedRun, int] | None:
        """The first pending run (longest first) that fits the deadline and that this runner
        holds or can take: one too long for the time left waits for the next call, and a
        shorter one behind it goes first; one another runner holds waits for the next look
        (LOOK_S). With none, under --resume-later, the first of which an epoch fits."""
        if time.monotonic() < self.look_at:
            return None
        now = self.share.clock()
        for fits in self.deadline.tests():
            self.waiting = 0
            for item in list(self.pending):
                if fits(item[0]) and self.take(item[0], now):
                    self.pending.remove(item)
                    if fits == self.deadline.fits_an_epoch:
                        self.say(deadlines.anyway(item[0]))
                    return item
        if self.waiting:
            self.look_at = time.monotonic() + LOOK_S
        return None

    def stop_all(self) -> None:
        """--resume-later's deadline came: stop every worker (their checkpoints stay); one that
        ended meanwhile is finished as usual."""
        for slot in self.active:
            slot.process.terminate()
        for slot in self.active:
            code = slot.process.wait()
            if slot.run.path.exists() or code != -signal.SIGTERM:
                self.finish(slot, 0 if slot.run.path.exists() else code)
            else:
                self.share.let_go(slot.run.label)
                self.stopped.append(slot.run.label)
                self.say(deadlines.stopped(slot.run))
        self.active.clear()
        self.share.changed()

    def take(self, run: PlannedRun, now: float) -> bool:
        """Whether this runner may train `run` now; one recorded elsewhere leaves the plan."""
        taken = self.share.take(run, now)
        if taken == "held":
            self.waiting += 1
        elif taken == "recorded":
            self.pending.remove((run, 1))
            self.elsewhere.append(run.label)
            self.say(f"skip {run.label}: another runner recorded it meanwhile")
        return taken == "taken"

    def summary(self) -> dict:
        """What `study status` says of this runner: its plan's runs done, running, to go."""
        done = self.finished + len(self.diverged) + len(self.elsewhere)
        return {
            "jobs": self.jobs,
            "done": self.done_before + done,
            "total": self.done_before + self.total,
            "running": {a.run.label: a.process.pid for a in self.active},  # workers' pids
            "waiting": self.waiting,
            "failed": self.failed,
            "eta": self.eta(),
        }

    def run(self) -> list[str]:
        """Train everything pending (up to the deadline, if any: then the runs left wait for
        the next call); return the labels of runs that failed."""
        try:
            while self.pending or self.active:
                while len(self.active) < self.jobs and (item := self.next_run()):
                    self.start(*item)
                if not self.active and not self.waiting:  # nothing runs, nothing pending fits
                    break
                time.sleep(POLL_S)
                if self.deadline.passed():
                    self.stop_all()
                for slot in [a for a in self.active if a.process.poll() is not None]:
                    self.active.remove(slot)
                    self.finish(slot, slot.process.returncode)
                    self.share.changed()
                self.share.beat(self.summary)
                self.view.tick()
        finally:
            for slot in self.active:  # interrupted: stop our workers; their checkpoints remain
                slot.process.terminate()
            for slot in self.active:
                slot.process.wait()
            self.share.close()  # the leases of runs left unfinished go back
        if self.pending:
            self.say(self.deadline.not_started(len(self.pending)))
        return self.failed


def run_all(
    runs: list[PlannedRun],
    known: list[Record],
    *,
    jobs: int,
    commit: bool,
    host: str,
    seconds: float | None = None,
    resume_later: bool = False,
    expiry_s: float = leases.EXPIRY_S,
    done_before: int = 0,
) -> list[str]:
    """Train `runs` (none recorded yet) `jobs` at a time, each under a lease (expiring after
    `expiry_s` without a heartbeat), under the live view; return the labels of those that
    failed. With `seconds`, only runs that should end within that long start, or, with
    `resume_later`, any run that gets an epoch done, stopped then (deadline.py).

    Datasets are fetched first, once, not raced by the workers; a SIGTERM to this process stops
    its workers too (their checkpoints stay for the rerun)."""
    for dataset in sorted({r.params["dataset"] for r in runs}):
        ensure_data(dataset)
    progress.remove_stale(progress.FOLDER, expiry_s)  # left by runners that died
    deadline = None if seconds is None else time.monotonic() + seconds
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with View(sys.stdout) as view:
            share = Share(Leases(expiry_s=expiry_s), known, view.say)
            return Runner(
                runs,
                share,
                jobs,
                host=host,
                view=view,
                commit=commit,
                deadline=deadline,
                resume_later=resume_later,
                done_before=done_before,
            ).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
