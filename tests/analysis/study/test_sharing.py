"""Runners sharing a checkout: every planned run trained once, a killed runner's run taken over
once its lease expires and resumed from its checkpoint, and runners on a mixed study ending
close together because each takes the longest run nobody holds."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, base
from helpers import env_for, record_dict, study_text, tiny_repo
from normlab.analysis.study import cost, leases, records, store
from normlab.analysis.study import plan as studies
from normlab.analysis.study.leases import Leases
from normlab.analysis.study.sharing import Share

HERE = Path(__file__).parent  # stub_worker.py; helpers.py and conftest.py are in tests/
LAUNCH = (
    "import sys; from normlab.analysis.study import cli, processes; from normlab.errors import "
    "run_stage; processes.WORKER = {worker!r}; run_stage(lambda: cli.main(sys.argv[1:]))"
)


def checkpoints(repo: Path) -> list[Path]:
    return sorted((repo.parent / f"{repo.name}-cache" / "checkpoints").glob("*.pt"))


def start_runner(repo: Path, *args: str, worker: str, epoch_s: float = 0.3) -> subprocess.Popen:
    """`study run --file studies/t.yaml <args>` in its own process group, its workers running
    `worker` (the stub, taking `epoch_s` an epoch, or the real normlab.analysis.worker)."""
    path = os.pathsep.join(map(str, (HERE, ROOT / "tests")))
    env = {**env_for(repo), "PYTHONPATH": path, "STUB_EPOCH_S": str(epoch_s)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH.format(worker=worker), "run", "--file", "studies/t.yaml"]
        + list(args),
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the runner and its workers: one group, killed as one
    )


def wait_for(condition, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill_mid_run(repo: Path, worker: str, started) -> tuple[str, str]:
    """Start a runner, SIGKILL it and its worker once `started()` (an epoch is checkpointed),
    and make its lease look like another host's (so only its expiry frees it). Returns the
    label of the run it held and its output."""
    third = start_runner(repo, "--jobs", "1", worker=worker)
    wait_for(lambda: started() or third.poll() is not None)
    os.killpg(third.pid, signal.SIGKILL)
    out = third.communicate()[0]
    assert third.returncode == -signal.SIGKILL, out
    (lease,) = (repo / ".normlab/leases").glob("*.lease")
    held = leases.read(lease)
    lease.write_text(lease.read_text().replace(held["host"], "a-host-that-died"))
    return held["label"], out


def run_two(repo: Path, worker: str) -> list[str]:
    """Two runners side by side on the same study; their outputs."""
    pair = [start_runner(repo, "--lease-expiry", "8s", worker=worker) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in pair]
    assert [p.returncode for p in pair] == [0, 0], "\n".join(outs)
    return outs


def check_once(repo: Path, labels: list[str], outs: list[str], killed: str) -> None:
    """Every run has one record and one `done` line; the killed run was taken over by one
    runner, which resumed it; no lease or progress file is left."""
    found = store.read_all(repo / "results")
    assert sorted(r.label() for r in found) == sorted(labels)
    done = Counter(re.findall(r"^done \d+/\d+ (\S+):", "".join(outs), re.M))
    assert done == Counter(labels)
    takers = [out for out in outs if re.search(rf"start \d+/\d+ {killed} .*resumes from", out)]
    assert len(takers) == 1
    assert list((repo / ".normlab/leases").glob("*.lease")) == []
    assert list((repo / ".normlab/progress").glob("*.json")) == []
    assert checkpoints(repo) == []


def test_two_runners_and_a_third_killed_mid_run_train_every_run_once_and_resume_it(tmp_path):
    variants = ("bn", "gn", "ln")
    repo = tiny_repo(tmp_path / "repo", study_text(epochs=4, variants=variants))
    trained = Path(env_for(repo)["NORMLAB_CACHE"]) / "trained.txt"
    killed, _ = kill_mid_run(repo, "stub_worker", lambda: trained.exists())
    outs = run_two(repo, "stub_worker")
    labels = [f"t/{v}/s0" for v in variants]
    check_once(repo, labels, outs, killed)
    epochs = Counter((label, int(e)) for label, e, _ in map(str.split, trained.open()))
    assert epochs == Counter({(label, e): 1 for label in labels for e in range(1, 5)})
    pids = [pid for label, _, pid in map(str.split, trained.open()) if label == killed]
    assert len(set(pids)) == 2  # the killed worker's epochs, then its taker's
    resumed = store.read(repo / f"results/t/runs/{killed}.json")
    assert [h["pid"] for h in resumed.history] == [int(p) for p in pids]


@pytest.mark.slow
def test_the_same_with_the_real_worker(tmp_path):
    variants = ("bn", "gn", "ln")
    text = study_text(epochs=5, batch=16, variants=variants)
    repo = tiny_repo(tmp_path / "repo", text)
    worker = "normlab.analysis.study.worker"
    killed, _ = kill_mid_run(repo, worker, lambda: bool(checkpoints(repo)))
    outs = run_two(repo, worker)
    labels = [f"t/{v}/s0" for v in variants]
    check_once(repo, labels, outs, killed)
    logs = list((repo / ".normlab/logs").glob("*/*.log"))
    printed = Counter()  # loop.fit prints an epoch once it is checkpointed
    for log in logs:
        label = log.stem.replace("-", "/")  # t-bn-s0.log: t/bn/s0
        printed.update(
            (label, int(e)) for e in re.findall(r"^epoch +(\d+)/5", log.read_text(), re.M)
        )
    assert printed == Counter({(label, e): 1 for label in labels for e in range(1, 6)})
    assert sum("resuming from" in log.read_text() for log in logs) == 1


def _mixed_plan() -> list[studies.PlannedRun]:
    """MNIST, Fashion and CIFAR (proxy) runs at batch 16 to 128: costs 1 to ~20 apart."""
    spec = studies.load_file(ROOT / "studies/default.yaml")
    return studies.plan(spec, base(), ["fashion", "cifar", "batch"], epochs=2).runs


def simulate(
    runs: list[studies.PlannedRun], folder: Path, count: int
) -> tuple[dict[str, float], list[studies.PlannedRun]]:
    """`count` runners, one run at a time each, taking runs through real leases and records;
    time is simulated: a run takes its cost. Returns when each runner ran out of runs, and the
    runs in the order they started."""
    shares = {
        f"r{i}": Share(Leases(folder / "leases"), [], print, folder, folder) for i in range(count)
    }
    pending = {name: cost.longest_first(runs) for name in shares}
    clock, ended, busy, started = dict.fromkeys(shares, 0.0), {}, {}, []
    while len(ended) < count:
        name = min((n for n in shares if n not in ended), key=lambda n: (clock[n], n))
        share = shares[name]
        if name in busy:  # its run ends now: recorded, lease given back
            run = busy.pop(name)
            store.write(folder / run.path, records.validate(record_dict(run.params), run.path))
            share.let_go(run.label)
        for run in list(pending[name]):
            taken = share.take(run, share.clock())
            if taken != "held":
                pending[name].remove(run)
            if taken == "taken":
                busy[name], clock[name] = run, clock[name] + cost.cost(run.params)
                started.append(run)
                break
        else:
            ended[name] = clock[name]
    return ended, started


def test_two_runners_on_a_mixed_study_end_within_the_longest_runs_cost(tmp_path):
    runs = _mixed_plan()
    ended, started = simulate(runs, tmp_path, 2)
    assert abs(ended["r0"] - ended["r1"]) <= max(cost.cost(r.params) for r in runs)
    assert sorted(r.key for r in started) == sorted({r.key for r in runs})  # each run once
    costs = [cost.cost(r.params) for r in started]
    assert costs == sorted(costs, reverse=True)  # longest first: the short ones close the study
    assert len(store.read_all(tmp_path / "results")) == len(started)
