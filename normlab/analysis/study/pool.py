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

With `commit`, each record (or divergence record) is committed as it lands (only its own
paths), so a long study survives its session being killed; records are what a clone, another
machine or the report reads.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from normlab.analysis.study import store
from normlab.analysis.study.estimates import estimate, eta
from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.records import Record
from normlab.analysis.study.worker import Job, ensure_data
from normlab.train import checkpoint

USER_ERROR = 2  # run_stage's exit code for a NormlabError: deterministic, not worth a retry
POLL_S = 0.2


@dataclass
class Active:
    run: PlannedRun
    attempt: int
    process: subprocess.Popen
    started: float
    log: Path | None


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _last_line(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return f": {lines[-1].strip()}" if lines else ""


def commit_record(paths: list[Path], message: str, out: TextIO) -> None:
    """Commit exactly these paths (others' staged or modified files stay as they are)."""
    names = [str(p) for p in paths]
    for attempt in range(20):  # other people's git commands hold .git/index.lock briefly
        add = subprocess.run(["git", "add", "--", *names], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--only", "--", *names],
            capture_output=True,
            text=True,
        )
        if done and done.returncode == 0:
            return
        err = (add if add.returncode else done).stderr.strip()
        if "index.lock" not in err or attempt == 19:
            print(f"warning: could not commit {names[-1]}: {err.splitlines()[-1:]}", file=out)
            return
        time.sleep(0.5)


def spawn(job: Job, log: Path | None) -> subprocess.Popen:
    """Start a worker for `job`, its output to `log` (or to this terminal)."""
    args = [sys.executable, "-m", "normlab.analysis.study.worker", json.dumps(asdict(job))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if log is None:
        return subprocess.Popen(args, env=env)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)


class Runner:
    """Keeps `jobs` workers busy until every run has a record or has failed."""

    def __init__(
        self,
        runs: list[PlannedRun],
        known: list[Record],
        jobs: int,
        commit: bool,
        logs: Path | None,
        out: TextIO,
        host: str,
        deadline: float | None = None,
    ):
        self.pending = deque((run, 1) for run in runs)
        self.known, self.jobs, self.commit, self.logs, self.out = known, jobs, commit, logs, out
        self.deadline = deadline  # time.monotonic() by which the runs started should end
        self.host = host  # the machine whose records price the runs here
        self.prices: dict[str, float | None] = {}  # by label, until a new record lands
        self.active: list[Active] = []
        self.failed: list[str] = []
        self.diverged: list[str] = []  # exit 2 with a divergence record: a result, not a failure
        self.started = self.finished = 0
        self.total = len(runs)

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def start(self, run: PlannedRun, attempt: int) -> None:
        job = Job(
            run.study,
            run.variant,
            run.seed,
            run.params,
            str(run.path),
            concurrent=len(self.active) + 1,
        )
        # several workers: each to its own log, so the terminal stays legible
        log = self.logs / f"{run.study}-{run.variant}-s{run.seed}.log" if self.logs else None
        process = spawn(job, log)
        resume = checkpoint.cache_path(checkpoint.fingerprint(run.params)).exists()
        note = ", resumes from its checkpoint" if resume else ""
        where = f", log {log}" if log else ""
        if attempt == 1:
            self.started += 1
            what = f"start {self.started}/{self.total} {run.label} (pid"
        else:
            what = f"restart {run.label} (attempt {attempt}, pid"
        self.say(f"{what} {process.pid}{where}{note})")
        self.active.append(Active(run, attempt, process, time.monotonic(), log))

    def finish(self, slot: Active, code: int) -> None:
        run, seconds = slot.run, time.monotonic() - slot.started
        if code == 0 and run.path.exists():
            record = store.read(run.path)
            self.known.append(record)
            self.prices.clear()  # the new record may price the runs left better
            self.finished += 1
            left = [r for r, _ in self.pending] + [a.run for a in self.active]
            time_left = eta(left, self.known, self.jobs, self.host)
            self.say(
                f"done {self.finished}/{self.total} {run.label}: "
                f"{record.final.acc:.2f} % in {record.seconds:.1f} s of training "
                f"({seconds:.0f} s in all) → {run.path}; {time_left}"
            )
            if self.commit:
                commit_record(
                    [p for p in (store.sidecar(run.path), run.path) if p.exists()],
                    f"record: {run.label}: {record.final.acc:.2f}%",
                    self.out,
                )
            return
        reason = _exit_reason(code) + _last_line(slot.log)
        marker = store.diverged_path(run.path)
        if code == USER_ERROR and marker.exists():
            self.say(
                f"diverged {run.label} after {seconds:.0f} s ({reason}); {marker} counts it "
                "as done (delete it to retry)"
            )
            self.diverged.append(run.label)
            if self.commit:  # a result too: a clone must not train it again to learn that
                commit_record([marker], f"record: {run.label}: diverged", self.out)
            return
        if code != USER_ERROR and slot.attempt == 1:
            self.say(
                f"worker for {run.label} died after {seconds:.0f} s ({reason}); "
                "starting it once more"
            )
            self.pending.appendleft((run, 2))
        else:
            self.say(f"failed {run.label} after {seconds:.0f} s ({reason})")
            self.failed.append(run.label)

    def fits(self, run: PlannedRun) -> bool:
        """Whether `run` should end before the deadline, priced from similar records as the
        ETA is. A run with no similar record fits while the deadline has not passed."""
        if self.deadline is None:
            return True
        if run.label not in self.prices:
            self.prices[run.label] = estimate(run.params, self.known, self.host)
        return time.monotonic() + (self.prices[run.label] or 0.0) < self.deadline

    def next_run(self) -> tuple[PlannedRun, int] | None:
        """The first pending run that fits: one too long for the time left waits for the next
        call, and a shorter one behind it goes first."""
        for item in self.pending:
            if self.fits(item[0]):
                self.pending.remove(item)
                return item
        return None

    def run(self) -> list[str]:
        """Train everything pending (up to the deadline, if any: then the runs left wait for
        the next call); return the labels of runs that failed."""
        try:
            while self.pending or self.active:
                while len(self.active) < self.jobs and (item := self.next_run()):
                    self.start(*item)
                if not self.active:  # nothing runs and nothing pending fits
                    break
                time.sleep(POLL_S)
                for slot in [a for a in self.active if a.process.poll() is not None]:
                    self.active.remove(slot)
                    self.finish(slot, slot.process.returncode)
        finally:
            for slot in self.active:  # interrupted: stop our workers; their checkpoints remain
                slot.process.terminate()
            for slot in self.active:
                slot.process.wait()
        if self.pending:
            left = len(self.pending)
            self.say(
                f"deadline: {left} run{'s' * (left != 1)} not started, as none would end "
                "before it (rerun to continue)"
            )
        return self.failed


def run_all(
    runs: list[PlannedRun],
    known: list[Record],
    *,
    jobs: int,
    commit: bool,
    logs: Path | None,
    host: str,
    out: TextIO = sys.stdout,
    seconds: float | None = None,
) -> list[str]:
    """Train `runs` (none done yet) `jobs` at a time; return the labels of those that failed.
    With `seconds` (a machine lent for a while, a session's end), a run starts only if it
    should end within that long, priced from `known` records made on `host` (this machine);
    the rest wait for the next call.

    A SIGTERM to the parent stops its workers too (their checkpoints stay for the rerun)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    for dataset in sorted({r.params["dataset"] for r in runs}):
        ensure_data(dataset)  # once here, not raced by N workers
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return Runner(runs, known, jobs, commit, logs, out, host, deadline).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
