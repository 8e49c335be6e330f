"""Worker processes: starting one for a run (`python -m normlab.analysis.study.worker '<job>'`, its
output to a log of its own, as the terminal is the live view's), and saying why one ended.
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.worker import Job

WORKER = "normlab.analysis.study.worker"  # the module each worker runs


@dataclass
class Active:
    """A worker running a run: which attempt, since when, logging where."""

    run: PlannedRun
    attempt: int
    process: subprocess.Popen
    started: float
    log: Path


def exit_reason(code: int) -> str:
    """'killed by SIGKILL', 'exit 1': how a worker ended, for a one-line report."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def last_line(log: Path) -> str:
    """': <the last line of its log>' (a worker's one-line error says why it ended), or ''."""
    if not log.exists():
        return ""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return f": {lines[-1].strip()}" if lines else ""


def spawn(job: Job, log: Path) -> subprocess.Popen:
    """Start a worker for `job`, its output to `log` (the terminal is the live view's)."""
    args = [sys.executable, "-m", WORKER, json.dumps(asdict(job))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)
