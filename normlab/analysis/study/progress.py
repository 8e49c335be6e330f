"""Progress files: what every running run and runner is doing, written where anyone sharing
the checkout can read it (`make study`'s live view, `make status` from another terminal or
another machine on the same filesystem).

Each worker keeps `run-<run id>.json` (run, epoch k/N, step within the epoch, last test
accuracy, seconds per epoch, host, pid, heartbeat) and each runner `runner-<token>.json` (its
plan's runs done and to go, ETA). Every write replaces the file whole (temp file + rename), so
a reader never sees half of one; a file's mtime, stamped by the file server, says how fresh it
is. The worker side hooks only into what the training library already takes: the batcher it
calls once per training step, and the `log` callback it calls once per epoch.
"""

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from normlab.analysis.study import leases
from normlab.analysis.study.leases import Lease
from normlab.io import write_json

FOLDER = Path(".normlab/progress")  # in the checkout: git and DVC ignore .normlab/
EVERY_S = 5.0  # a running run's file is rewritten at least this often (and at each epoch's end)


def run_path(folder: Path, key: str) -> Path:
    """The progress file of the run with this identity key (one per run, whoever trains it)."""
    return folder / f"run-{leases.run_id(key)}.json"


def runner_path(folder: Path, token: str) -> Path:
    """The summary file of the runner holding leases under `token`."""
    return folder / f"runner-{token.replace(':', '-')}.json"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read(folder: Path, kind: str) -> list[dict[str, Any]]:
    """Every `<kind>-*.json` in `folder` ("run" or "runner"), each with its `age` in seconds by
    the file server's clock; files being replaced or unreadable are left out."""
    if not folder.is_dir():
        return []
    now = leases.server_now(folder)
    found = []
    for path in sorted(folder.glob(f"{kind}-*.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append({**json.loads(path.read_text()), "age": now - path.stat().st_mtime})
    return found


def seconds_left(run: dict[str, Any]) -> tuple[float, bool] | None:
    """Seconds a running run still needs at its own pace, and whether that pace is a guess:
    before its first epoch ends, the step rate of the epoch under way (a small-batch epoch can
    take many minutes). None before it has taken a step."""
    per_epoch, steps = run.get("seconds_per_epoch"), run.get("steps") or 1
    guess = False
    if not per_epoch and run.get("epoch_s") and run.get("step"):
        per_epoch, guess = run["epoch_s"] / run["step"] * steps, True
    if not per_epoch:
        return None
    return (run["epochs"] - run["epoch"] - run["step"] / steps) * per_epoch, guess


def remove_stale(folder: Path, older_s: float) -> None:
    """Delete the progress files of runners and workers that are gone: not rewritten for
    `older_s`, or written by a process of this host that has ended."""
    if not folder.is_dir():
        return
    now = leases.server_now(folder)
    for path in folder.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            if now - path.stat().st_mtime > older_s or leases.ended(json.loads(path.read_text())):
                path.unlink()


class Tracker:
    """A worker's signs of life, kept fresh from a thread while its run trains: its progress
    file (at each epoch's end and every `every_s` seconds), its lease's heartbeat, and its own
    end when its runner is gone (an orphan would keep a lease alive that nobody releases)."""

    def __init__(
        self,
        path: Path,
        about: dict,
        shape: tuple[int, int],
        lease: Lease | None,
        every_s: float = EVERY_S,
    ):
        """`shape`: the run's epochs and steps per epoch."""
        self.path, self.lease, self.every_s = path, lease, every_s
        self.state: dict[str, Any] = {
            **about,
            "epoch": 0,
            "epochs": shape[0],
            "step": 0,
            "steps": shape[1],
            "test_acc": None,
            "seconds_per_epoch": None,
            "resumed_at": 0,
            "pid": os.getpid(),
        }
        self.lost = False  # the lease was gone at a heartbeat: another runner took the run
        self._epoch_start: float | None = None  # first step of the epoch under way
        self._timed: list[float] = []  # seconds of the epochs this process trained
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._parent = os.getppid()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def batcher(self, inner: Callable) -> Callable:
        """`inner` (the run's batcher), counting the training steps it serves."""

        def counted(images: Any, train: bool) -> Any:
            if train:
                if self._epoch_start is None:
                    self._epoch_start = time.monotonic()
                self.state["step"] += 1
            return inner(images, train)

        return counted

    def epoch(self, record: dict) -> None:
        """loop.fit's `log`: an epoch ended (or a resumed run replays one from its checkpoint,
        before any step: those are not timed)."""
        if self._epoch_start is None:
            self.state["resumed_at"] = record["epoch"]
        else:
            self._timed.append(time.monotonic() - self._epoch_start)
        self._epoch_start = None
        self.state.update(
            epoch=record["epoch"],
            step=0,
            test_acc=record.get("test/acc"),
            seconds_per_epoch=sum(self._timed) / len(self._timed) if self._timed else None,
        )
        self.write()

    def write(self) -> None:
        """The state, with the seconds since the epoch under way took its first step: before a
        run's first epoch ends, its step rate is all there is to say how long it will take."""
        start = self._epoch_start
        elapsed = None if start is None else round(time.monotonic() - start, 1)
        with self._lock:
            write_json(self.path, {**self.state, "epoch_s": elapsed, "heartbeat": utc_now()})

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            if os.getppid() != self._parent:  # the runner died: stop like its SIGTERM would
                os.kill(os.getpid(), signal.SIGTERM)
            self.write()
            if self.lease is not None and not self.lost:
                self.lost = not leases.beat(self.lease)

    def __enter__(self) -> "Tracker":
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the heartbeats; the file stays until the runner has seen the worker end (it
        removes it with the lease), so the run never vanishes from the view before that."""
        self._stop.set()
        self._thread.join()
