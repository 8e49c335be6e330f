"""Leases: one runner per run, taken over once the holder's heartbeat stops, never twice."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from normlab.analysis.study import leases
from normlab.analysis.study.leases import Leases


def backdate(path, seconds: float) -> None:
    """The lease's last heartbeat `seconds` ago, as a dead holder leaves it."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_one_runner_takes_a_run_the_others_skip_it_until_it_is_released(tmp_path):
    a, b = Leases(tmp_path), Leases(tmp_path)
    lease = a.take("key", "t/bn/s0")
    assert lease is not None and leases.held(lease)
    assert json.loads(lease.path.read_text())["label"] == "t/bn/s0"
    assert b.take("key", "t/bn/s0") is None
    assert b.holder("key")["token"] == a.token  # who holds it, for the messages
    assert b.take("other key", "t/ln/s0") is not None  # another run is free
    assert leases.release(lease) and not lease.path.exists()
    assert b.holder("key") is None and b.take("key", "t/bn/s0") is not None


def _race(folder, key: str, count: int = 8) -> list:
    """`count` runners take the run at once (threads really race in the filesystem: os.open
    releases the GIL); what each got."""
    runners = [Leases(folder) for _ in range(count)]
    start, got = threading.Barrier(count), []

    def race(runner: Leases) -> None:
        start.wait()
        got.append(runner.take(key, key))

    threads = [threading.Thread(target=race, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


@pytest.mark.parametrize("expired", [False, True])
def test_of_many_runners_racing_for_a_run_exactly_one_gets_it(tmp_path, expired):
    for n in range(20):
        key = f"run {n}"
        if expired:  # a dead runner's lease: many want to take it over at once
            dead = Leases(tmp_path).take(key, key)
            backdate(dead.path, leases.EXPIRY_S + 1)
        won = [lease for lease in _race(tmp_path, key) if lease is not None]
        assert len(won) == 1 and leases.held(won[0])
        assert [p.name for p in tmp_path.glob(f"{leases.run_id(key)}.*.lease")] == [
            won[0].path.name  # a take-over leaves the new lease alone
        ]


def test_an_expired_lease_is_taken_over_and_its_old_holder_sees_it_lost(tmp_path):
    a, b, c = Leases(tmp_path), Leases(tmp_path), Leases(tmp_path)
    old = a.take("key", "t/bn/s0")
    backdate(old.path, leases.EXPIRY_S - 5)
    assert b.take("key", "t/bn/s0") is None  # late, but within the expiry
    backdate(old.path, leases.EXPIRY_S + 5)
    new = b.take("key", "t/bn/s0")
    assert new is not None and new.path != old.path and not old.path.exists()
    assert c.take("key", "t/bn/s0") is None  # the new lease is live
    assert not leases.held(old) and leases.held(new)
    assert not leases.beat(old)  # the old holder's heartbeat finds its file gone
    assert not leases.release(old) and new.path.exists()  # nor can it give the new one back


def test_a_stale_holder_cannot_pass_for_a_new_lease_of_the_same_number(tmp_path):
    """All leases of a run released, the next is number 0 again: the token tells them apart."""
    a, b = Leases(tmp_path), Leases(tmp_path)
    old = a.take("key", "x")
    backdate(old.path, leases.EXPIRY_S + 5)
    taken = b.take("key", "x")
    assert leases.release(taken)
    again = b.take("key", "x")
    assert again.path == old.path and not leases.held(old) and leases.held(again)


def test_a_heartbeat_keeps_a_lease_alive_and_with_a_shorter_expiry_it_is_lost(tmp_path):
    lease = Leases(tmp_path).take("key", "x")
    backdate(lease.path, leases.EXPIRY_S + 5)
    assert leases.beat(lease)
    assert Leases(tmp_path).take("key", "x") is None
    backdate(lease.path, 30)
    assert Leases(tmp_path, expiry_s=60).take("key", "x") is None
    assert Leases(tmp_path, expiry_s=20).take("key", "x") is not None


def test_a_lease_whose_runner_process_ended_on_this_host_is_free_at_once(tmp_path):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    pid = int(ended.stdout)
    path = tmp_path / f"{leases.run_id('key')}.0.lease"
    for host, free in (("another-host", False), (socket.gethostname(), True)):
        path.write_text(json.dumps({"label": "x", "host": host, "pid": pid, "token": "t"}))
        assert (Leases(tmp_path).holder("key") is None) is free
    assert Leases(tmp_path).take("key", "x") is not None


def test_beats_come_several_times_per_expiry():
    assert leases.beat_every(leases.EXPIRY_S) == leases.BEAT_S
    assert leases.beat_every(2.0) == 0.5
