"""The live view of a study, drawn from the progress files (normlab.analysis.progress): each
runner's runs done / total and ETA, and every running run at its epoch and step, with its last
test accuracy, seconds per epoch, time left, host and heartbeat.

`make study` shows it under its own lines (start, done, …): redrawn in place about every second
on a terminal (rich), and as a block of plain lines about every minute when its output is a
file (CI, SLURM logs). `make status` prints the same once, from any terminal or any machine that
shares the checkout, since everything it shows is in files there.
"""

import contextlib
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from normlab.analysis.study import progress
from normlab.analysis.study.estimates import duration

REFRESH_S = 1.0  # on a terminal: redrawn this often
LINES_EVERY_S = 60.0  # otherwise: a block of plain lines this often
SILENT_S = 60.0  # a file not rewritten for this long (they are, every few seconds): say so
COLUMNS = ("run", "epoch", "step in epoch", "test acc", "s/epoch", "left", "where", "heartbeat")


def _ago(age: float) -> str:
    return f"{duration(max(age, 0.0))} ago" + (" (silent!)" if age > SILENT_S else "")


def runner_line(runner: dict[str, Any]) -> str:
    """One runner: where it runs, its plan's runs recorded / planned, what it waits for, ETA."""
    waiting = f", {runner['waiting']} held by other runners" if runner.get("waiting") else ""
    failed = f", failed: {', '.join(runner['failed'])}" if runner.get("failed") else ""
    return (
        f"runner {runner['host']} pid {runner['pid']} ({runner['jobs']} at a time): "
        f"{runner['done']}/{runner['total']} runs recorded, {len(runner['running'])} running"
        f"{waiting}{failed}; {runner['eta']}; heartbeat {_ago(runner['age'])}"
    )


def _left(run: dict[str, Any]) -> str:
    """Time the run still needs at its own pace; "~" while that is its first epoch's step rate."""
    left = progress.seconds_left(run)
    if left is None:
        return "?"
    return "~" * left[1] + duration(left[0])


def run_row(run: dict[str, Any]) -> tuple[str, ...]:
    """One running run's cells, in COLUMNS' order."""
    acc, per_epoch = run.get("test_acc"), run.get("seconds_per_epoch")
    resumed = f" (resumed at {run['resumed_at']})" if run.get("resumed_at") else ""
    return (
        run["label"],
        f"{run['epoch']}/{run['epochs']}{resumed}",
        f"{run['step']}/{run['steps'] or '?'}",
        f"{acc:.2f} %" if acc is not None else "-",
        f"{per_epoch:.1f}" if per_epoch else "-",
        _left(run),
        f"{run['host']} pid {run['pid']}",
        _ago(run["age"]),
    )


def snapshot(folder: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    """The runner lines and the running runs' rows, as the files in `folder` say now."""
    found = progress.read(folder, "runner")
    runners = [runner_line(r) for r in found]
    runs = sorted(run_row(r) for r in progress.read(folder, "run"))
    shown = {row[0] for row in runs}
    starting = sorted(
        (label, f"{r['host']} pid {pid}")  # its worker has not written its progress file yet
        for r in found
        for label, pid in r["running"].items()
        if label not in shown
    )
    runs += [(label, "starting", "-", "-", "-", "-", where, "-") for label, where in starting]
    if not runners:
        orphans = " (a worker is: its runner died?)" if runs else ""
        runners = [f"no runner is writing in {folder}{orphans}"]
    return runners, runs


def plain(folder: Path) -> str:
    """The snapshot as plain text: a stamped header, the runners, the runs in aligned columns."""
    runners, runs = snapshot(folder)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"--- {stamp}: {len(runs)} run{'s' * (len(runs) != 1)} training", *runners]
    if runs:
        rows = [COLUMNS, *runs]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
    return "\n".join(lines)


def rich_view(folder: Path) -> Group:
    """The snapshot for a terminal: the runners' lines over a table of the running runs."""
    runners, runs = snapshot(folder)
    table = Table(*COLUMNS, box=None, header_style="bold", pad_edge=False)
    for row in runs:
        table.add_row(*row)
    return Group(*(Text(line) for line in runners), table)


class View:
    """What a runner shows while it trains: its own lines as they happen, and the snapshot of
    the progress `folder`, in place on a terminal or as plain lines every `every_s` otherwise
    (no snapshot when `folder` is None)."""

    def __init__(
        self,
        out: TextIO,
        folder: Path | None = progress.FOLDER,
        terminal: bool | None = None,
        every_s: float | None = None,
    ):
        self.console = Console(file=out, highlight=False, force_terminal=terminal)
        self.out, self.folder = out, folder
        self.terminal = self.console.is_terminal if terminal is None else terminal
        self.every_s = every_s or (REFRESH_S if self.terminal else LINES_EVERY_S)
        self.next_at = time.monotonic() + (0.0 if self.terminal else self.every_s)
        self.live: Live | None = None

    def __enter__(self) -> "View":
        if self.terminal and self.folder is not None:
            self.live = Live(
                console=self.console, auto_refresh=False, redirect_stderr=False, transient=True
            )  # transient: at the end the table goes; the lines printed above it stay
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def say(self, line: str) -> None:
        if self.live is not None:
            self.live.console.print(line, markup=False, soft_wrap=True)
        else:
            print(line, file=self.out, flush=True)

    def tick(self) -> None:
        """Redraw (or print the plain lines) when it is time to."""
        if self.folder is None or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.every_s
        if self.live is not None:
            self.live.update(rich_view(self.folder), refresh=True)
        else:
            print(plain(self.folder), file=self.out, flush=True)


def status(follow: bool, out: TextIO, folder: Path = progress.FOLDER) -> None:
    """`study status`: the snapshot once; with `follow`, kept up to date (in place on a
    terminal, else a block a minute) until Ctrl-C."""
    view = View(out, folder)
    if not (follow and view.terminal):
        print(plain(folder), file=out, flush=True)
    if not follow:
        return
    with view, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: nothing to undo
        while True:
            view.tick()
            time.sleep(REFRESH_S)
