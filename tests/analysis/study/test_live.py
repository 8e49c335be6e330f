"""Progress files and the live view: what a worker writes as it trains, and what `make study`
and `make status` draw from those files."""

import io
import json
import os
import socket
import subprocess
import sys
import time

from normlab.analysis.study import cli, leases, live, progress
from normlab.analysis.study.leases import Leases
from normlab.analysis.study.progress import Tracker
from normlab.io import write_json


def read(path):
    return json.loads(path.read_text())


def test_a_worker_writes_its_step_epoch_and_accuracy_and_leaves_the_file_to_its_runner(tmp_path):
    path = tmp_path / "run-x.json"
    tracker = Tracker(path, {"label": "t/bn/s0"}, (3, 4), lease=None, every_s=3600)
    batcher = tracker.batcher(lambda images, train: images * 2)
    with tracker:
        assert read(path)["label"] == "t/bn/s0"  # before the data is even loaded:
        assert (read(path)["epoch"], read(path)["steps"]) == (0, 4)  # epoch 0, 0 of 4 steps
        assert [batcher(1, train=True) for _ in range(3)] == [2, 2, 2]  # batches unchanged
        batcher(1, train=False)  # evaluation batches are no steps
        tracker.write()  # what the thread does every few seconds
        state = read(path)
        assert (state["epoch"], state["step"], state["steps"]) == (0, 3, 4)
        assert state["epoch_s"] >= 0  # the epoch under way is timed from its first step
        assert state["pid"] == os.getpid() and state["heartbeat"].endswith("Z")
        batcher(1, train=True)
        tracker.epoch({"epoch": 1, "test/acc": 97.5})
        state = read(path)  # written at once at an epoch's end
        assert (state["epoch"], state["step"], state["test_acc"]) == (1, 0, 97.5)
        assert state["epoch_s"] is None  # no step of epoch 2 yet
        assert state["seconds_per_epoch"] >= 0 and state["resumed_at"] == 0
    assert read(path)["epoch"] == 1  # shown until its runner sees the worker end


def test_a_resumed_run_says_where_it_resumed_and_times_only_its_own_epochs(tmp_path):
    path = tmp_path / "run-x.json"
    tracker = Tracker(path, {"label": "x"}, (3, 2), lease=None, every_s=3600)
    batcher = tracker.batcher(lambda images, train: images)
    with tracker:
        for epoch in (1, 2):  # loop.fit replays the checkpoint's epochs before any step
            tracker.epoch({"epoch": epoch, "test/acc": 90.0 + epoch})
        assert read(path)["resumed_at"] == 2 and read(path)["seconds_per_epoch"] is None
        batcher(1, train=True)
        tracker.epoch({"epoch": 3, "test/acc": 95.0})
        assert read(path)["seconds_per_epoch"] is not None


def _wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_the_tracker_beats_its_lease_and_notices_when_it_was_taken_over(tmp_path):
    lease = Leases(tmp_path / "leases").take("key", "x")
    then = time.time() - 1000
    os.utime(lease.path, (then, then))
    path = tmp_path / "run-x.json"
    with Tracker(path, {"label": "x"}, (2, 5), lease=lease, every_s=0.01) as tracker:
        assert _wait_for(lambda: lease.path.stat().st_mtime > then + 500)
        lease.path.unlink()  # another runner took it over
        assert _wait_for(lambda: tracker.lost)
        write_json(path, {"label": "x", "by": "the new holder"})
    assert path.exists()  # the new holder's file stays


def _files(folder):
    """A runner that holds two runs: one training, one whose worker is still starting."""
    write_json(
        progress.runner_path(folder, "host-a:12:ab"),
        {
            "host": "host-a",
            "pid": 12,
            "jobs": 2,
            "done": 3,
            "total": 8,
            "running": {"norms/bn/s0": 4567, "norms/gn/s1": 4568},
            "waiting": 1,
            "failed": [],
            "eta": "ETA 4 min",
            "heartbeat": "2026-01-01T00:00:00Z",
        },
    )
    run = {
        "label": "norms/bn/s0",
        "epoch": 3,
        "epochs": 20,
        "step": 412,
        "steps": 937,
        "test_acc": 98.123,
        "seconds_per_epoch": 31.0,
        "resumed_at": 2,
        "host": "host-b",
        "pid": 4567,
    }
    write_json(progress.run_path(folder, "key"), run)


def test_status_shows_each_runner_and_each_running_run_from_the_files(tmp_path):
    _files(tmp_path)
    text = live.plain(tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("--- ") and lines[0].endswith(": 2 runs training")
    assert lines[1].startswith(
        "runner host-a pid 12 (2 at a time): 3/8 runs recorded, 2 running, 1 held by other "
        "runners; ETA 4 min; heartbeat "
    )
    header = "run epoch step in epoch test acc s/epoch left where heartbeat"
    assert lines[2].split() == header.split()
    row = lines[3].split()  # (20 - 3 - 412/937) epochs × 31 s = 8.6 min
    assert row[:8] == ["norms/bn/s0", "3/20", "(resumed", "at", "2)", "412/937", "98.12", "%"]
    assert row[8:14] == ["31.0", "9", "min", "host-b", "pid", "4567"]
    assert lines[4].split() == [
        "norms/gn/s1",
        "starting",
        *"- - - -".split(),
        "host-a",
        "pid",
        "4568",
        "-",
    ]


def test_before_its_first_epoch_ends_a_run_s_time_left_is_guessed_from_its_step_rate():
    run = {"epoch": 0, "epochs": 20, "step": 500, "steps": 30000, "seconds_per_epoch": None}
    assert live.run_row({**run, "label": "x", "host": "h", "pid": 1, "age": 0})[5] == "?"
    started = {**run, "epoch_s": 2.0}  # 500 steps in 2 s: 120 s an epoch, 19.98 epochs left
    assert live.run_row({**started, "label": "x", "host": "h", "pid": 1, "age": 0})[5] == (
        "~" + live.duration(19.98 * 120.0)
    )


def test_a_silent_runner_or_run_is_marked(tmp_path):
    _files(tmp_path)
    old = time.time() - 2 * live.SILENT_S
    for path in tmp_path.glob("*.json"):
        os.utime(path, (old, old))
    assert live.plain(tmp_path).count("ago (silent!)") == 2


def test_nothing_running_says_so(tmp_path):
    assert "no runner is writing in" in live.plain(tmp_path / "none")


def test_off_a_terminal_the_view_prints_its_lines_and_plain_blocks_between(tmp_path):
    _files(tmp_path)
    out = io.StringIO()
    with live.View(out, tmp_path, terminal=False, every_s=1e-9) as view:
        view.say("start 1/2 norms/bn/s0 (pid 4567)")
        time.sleep(0.01)
        view.tick()
    text = out.getvalue()
    assert text.startswith("start 1/2 norms/bn/s0 (pid 4567)\n--- ")
    assert "\x1b[" not in text and "  norms/bn/s0  3/20" in text


def test_on_a_terminal_the_view_redraws_in_place_under_the_runners_lines(tmp_path):
    _files(tmp_path)
    out = io.StringIO()
    with live.View(out, tmp_path, terminal=True) as view:
        view.tick()
        view.say("done 1/2 norms/bn/s0")
        view.tick()
    text = out.getvalue()
    assert "done 1/2 norms/bn/s0" in text and "norms/bn/s0" in text.split("done 1/2")[1]
    assert "\x1b[2K" in text  # erases the previous drawing (cursor control), draws anew


def test_study_status_from_another_terminal(tmp_path, monkeypatch, capsys):
    _files(tmp_path / ".normlab/progress")
    monkeypatch.chdir(tmp_path)  # the checkout
    cli.main(["status"])
    shown = capsys.readouterr().out
    assert "runner host-a pid 12" in shown and shown.count("norms/bn/s0") == 1


def test_stale_files_of_runners_that_died_are_removed(tmp_path):
    _files(tmp_path)
    fresh = tmp_path / "run-fresh.json"
    write_json(fresh, {"host": socket.gethostname(), "pid": os.getpid()})
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = tmp_path / "runner-here-and-ended.json"  # fresh, but its process has ended
    write_json(dead, {"host": socket.gethostname(), "pid": int(ended.stdout)})
    old = time.time() - leases.EXPIRY_S - 10
    for path in tmp_path.glob("*.json"):
        if path not in (fresh, dead):
            os.utime(path, (old, old))
    progress.remove_stale(tmp_path, leases.EXPIRY_S)
    assert list(tmp_path.glob("*.json")) == [fresh]
