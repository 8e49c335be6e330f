"""The study runner end to end on tiny synthetic data: records, reruns, dead workers, verify."""

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import parse
from helpers import HOST, TINY, env_for, git, record_dict, study, study_text, tiny_repo
from normlab import config
from normlab.analysis.study import cli, estimates, pool, progress, records, store, worker
from normlab.analysis.study import plan as studies
from normlab.analysis.study.leases import Leases
from normlab.analysis.study.live import View
from normlab.analysis.study.sharing import Share
from normlab.errors import NormlabError


def checkpoints(repo: Path) -> list[Path]:
    return sorted((repo.parent / f"{repo.name}-cache" / "checkpoints").glob("*.pt"))


def test_a_study_writes_records_and_a_rerun_trains_nothing(tmp_path, monkeypatch, capsys):
    repo = tiny_repo(tmp_path / "repo", study_text())
    first = study(repo, "run", "--file", "studies/t.yaml", "--jobs", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 runs planned: 0 have records, 2 to train, 2 at a time" in first.stdout
    assert first.stdout.count("start ") == 2 and first.stdout.count("done ") == 2
    assert "2/2 runs have records under results/t/runs" in first.stdout
    found = store.read_all(repo / "results")
    assert sorted(r.label() for r in found) == ["t/bn/s0", "t/ln/s0"]
    bn = store.read(repo / "results/t/runs/t/bn/s0.json")
    assert len(bn.history) == 1 and bn.final.acc == pytest.approx(
        bn.history[-1]["test/acc"], abs=0.005
    )
    assert bn.params["limit"] == 256 and bn.device == "cpu" and len(bn.code) == 40
    assert bn.started <= bn.ended and bn.code_at_end is None  # ISO UTC strings sort as times
    assert sum(map(sum, bn.confusion)) == 200 and set(bn.data_md5) == set(
        worker.data_files("mnist")
    )
    images = store.sidecar(repo / "results/t/runs/t/bn/s0.json")  # no data/mnist in this repo
    assert images.exists()
    assert checkpoints(repo) == []  # a finished run's checkpoint is gone

    # in-process from here (no worker starts): a rerun trains nothing, plan says all is done
    monkeypatch.chdir(repo)
    monkeypatch.setenv("NORMLAB_CACHE", env_for(repo)["NORMLAB_CACHE"])
    with pytest.raises(SystemExit) as again:
        cli.main(["run", "--file", "studies/t.yaml", "--jobs", "2"])
    out = capsys.readouterr().out
    assert again.value.code == 0 and "2 have records, 0 to train" in out and "start " not in out
    cli.main(["plan", "--file", "studies/t.yaml"])
    out = capsys.readouterr().out
    assert out.count("  done ") == 2 and "2 runs: 2 done, 0 to run\n" in out
    cli.main(["plan", "--file", "studies/t.yaml", "--epochs", "2"])  # priced per epoch from 1
    out = capsys.readouterr().out
    assert "2 runs: 0 done, 2 to run; ETA " in out and out.count("to run   ~") == 2
    assert out.count(" (from 1 record)\n") == 2  # how each was priced: its record's epoch

    # verify retrains from scratch and names every number that differs from the record
    path = Path("results/t/runs/t/ln/s0.json")
    with pytest.raises(SystemExit) as same:
        cli.main(["verify", str(path), "--device", "cpu"])
    assert same.value.code == 0 and "verdict: identical" in capsys.readouterr().out
    edited = json.loads(path.read_text())
    edited["final"]["acc"] += 0.01
    path.write_text(json.dumps(edited))
    with pytest.raises(SystemExit) as differs:
        cli.main(["verify", str(path)])
    out = capsys.readouterr().out
    assert differs.value.code == 1 and "final acc: " in out and "(-0.01 %)" in out
    assert "final loss: " in out and "identical" in out.split("final loss: ")[1].split("\n")[0]
    assert "verdict: differs from results/t/runs/t/ln/s0.json (on the same machine type" in out


def _logged(repo: Path, text: str) -> bool:
    return any(text in log.read_text() for log in (repo / ".normlab/logs").glob("*/*.log"))


def _reader(process: subprocess.Popen, lines: list[str]) -> threading.Thread:
    def read() -> None:
        for line in process.stdout:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_its_run_resumes_from_its_checkpoint(tmp_path):
    repo = tiny_repo(tmp_path / "repo", study_text(epochs=12, batch=16, variants=("bn",)))
    process = subprocess.Popen(
        [sys.executable, "-m", "normlab.analysis.study", "run", "--file", "studies/t.yaml"],
        cwd=repo,
        env=env_for(repo),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    reader = _reader(process, lines)
    deadline = time.monotonic() + 120
    # epoch 1 done: checkpointed, then printed (fit saves before it prints: killed in between,
    # the first attempt's log would hold no epoch line)
    while not (checkpoints(repo) and _logged(repo, "epoch   1/12")) and time.monotonic() < deadline:
        time.sleep(0.01)
    start = next(line for line in lines if "start 1/1 t/bn/s0 (pid " in line)
    os.kill(int(start.split("(pid ")[1].split(")")[0].split(",")[0]), signal.SIGKILL)
    process.wait(timeout=300)
    reader.join(timeout=10)
    out = "".join(lines)
    assert process.returncode == 0, out
    assert "worker for t/bn/s0 died" in out and "killed by SIGKILL" in out
    assert "restart t/bn/s0 (attempt 2, pid" in out and "resumes from its checkpoint" in out
    (log,) = (repo / ".normlab/logs").glob("*/t-bn-s0.log")  # both attempts' output
    both = log.read_text()
    assert "of 12 epochs done" in both and "epoch   1/12" in both.split("resuming from")[0]
    assert "epoch   1/12" not in both.split("resuming from")[1]  # not trained from scratch
    path = repo / "results/t/runs/t/bn/s0.json"
    assert [h["epoch"] for h in store.read(path).history] == list(range(1, 13))
    # the resumed run is the run: retrained from scratch it gives the same numbers
    check = study(repo, "verify", "results/t/runs/t/bn/s0.json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "verdict: identical" in check.stdout and "identical over 12 epochs" in check.stdout


def _run(seed: int = 0) -> studies.PlannedRun:
    params = parse({"seed": seed, "train.epochs": 2}).model_dump()
    return studies.PlannedRun(
        "t", "bn", seed, {}, params, records.identity(params), Path(f"nowhere/s{seed}.json")
    )


class _Exited:
    pid = 1

    def __init__(self, code: int):
        self.returncode = code


def _runner(
    folder: Path, runs: list, out: io.StringIO, known: list | None = None, **options
) -> pool.Runner:
    """A runner with its own lease, progress and results folders, saying what it does to `out`."""
    view = View(out, None)
    the_leases, results = Leases(folder / "leases"), folder / "results"
    share = Share(the_leases, known or [], view.say, folder / "progress", results)
    return pool.Runner(runs, share, 2, host=HOST, view=view, **options)


@pytest.mark.parametrize(
    "code, attempt, retried, reason",
    [
        (-signal.SIGKILL, 1, True, "killed by SIGKILL"),
        (1, 1, True, "exit 1"),  # a crash (a traceback): once more
        (-signal.SIGKILL, 2, False, "killed by SIGKILL"),  # the second death is final
        (2, 1, False, "exit 2"),  # a NormlabError (diverged, bad params) would fail the same way
    ],
)
def test_a_dead_worker_is_retried_once_unless_it_stopped_on_a_user_error(
    code, attempt, retried, reason, tmp_path
):
    out = io.StringIO()
    work = _runner(tmp_path, [], out)
    assert work.share.take(_run(), work.share.clock()) == "taken"
    log = tmp_path / "t-bn-s0.log"
    work.finish(pool.Active(_run(), attempt, _Exited(code), time.monotonic(), log), code)
    assert (list(work.pending) == [(_run(), 2)]) is retried
    assert (work.failed == ["t/bn/s0"]) is not retried
    assert reason in out.getvalue() and out.getvalue().count("\n") == 1
    assert work.share.holds("t/bn/s0") is retried  # kept for the retry, else given back


def test_a_dead_worker_whose_run_was_taken_over_meanwhile_is_not_retried(tmp_path):
    out = io.StringIO()
    work = _runner(tmp_path, [], out)
    work.share.take(_run(), work.share.clock())
    (lease,) = (tmp_path / "leases").glob("*.lease")
    os.utime(lease, (time.time() - 1000, time.time() - 1000))  # its heartbeat stopped
    assert Leases(tmp_path / "leases").take(_run().key, "t/bn/s0") is not None  # taken over
    code = -signal.SIGKILL
    work.finish(pool.Active(_run(), 1, _Exited(code), time.monotonic(), tmp_path / "l"), code)
    assert not work.pending and not work.failed
    assert out.getvalue() == (
        "lost t/bn/s0: its worker died and another runner took the run over\n"
    )


def test_after_the_deadline_no_run_starts_and_the_rest_are_named(tmp_path):
    out = io.StringIO()
    late = _runner(tmp_path, [_run(0), _run(1)], out, deadline=time.monotonic() - 1)
    assert late.run() == [] and late.started == 0
    assert out.getvalue() == (
        "deadline: 2 runs not started, as none would end before it (rerun to continue)\n"
    )


def test_before_the_deadline_only_runs_that_should_end_by_then_start(tmp_path):
    known = [records.validate(record_dict(_run().params), "a")]  # prices _run(n) at 252.5 s
    other = parse({"train.model": "cnn-pad"}).model_dump()
    unpriced = studies.PlannedRun("t", "x", 0, {}, other, records.identity(other), Path("x"))
    soon = time.monotonic() + 100
    runs = [_run(1), unpriced, _run(2)]
    work = _runner(tmp_path, runs, io.StringIO(), known, deadline=soon)
    assert work.next_run() == (unpriced, 1)  # no price: it may start; the two long ones wait
    assert work.next_run() is None and len(work.pending) == 2
    work.deadline.at = time.monotonic() + 300
    assert work.next_run() == (_run(1), 1)  # 252.5 s fit now, in their order


@pytest.mark.parametrize(
    "text, seconds", [("2h30m", 9000), ("150m", 9000), ("90s", 90), ("600", 600), ("1h", 3600)]
)
def test_a_deadline_reads_hours_minutes_and_seconds(text, seconds):
    assert cli.parse_duration(text) == seconds


def test_a_lease_expiry_of_nothing_is_one_line():
    with pytest.raises(NormlabError, match=r"^--lease-expiry: must be at least 1s \(default 5m\)$"):
        cli.main(["run", "--lease-expiry", "0s"])


def test_a_bad_deadline_is_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--deadline", "soon"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("argument --deadline: 'soon': expected e.g. 2h30m, 150m, 90s or 600")


def test_time_left_comes_from_similar_records_made_on_the_same_machine():
    known = [records.validate(record_dict(_run().params), "a")]
    assert estimates.estimate(_run(1).params, known, HOST) == 252.5  # another seed: similar
    longer = parse({"train.epochs": 3}).model_dump()
    assert estimates.estimate(longer, known, HOST) == pytest.approx(252.5 / 2 * 3)  # per epoch
    other = parse({"train.batch_size": 32, "train.epochs": 2}).model_dump()
    assert estimates.estimate(other, known, HOST) == 505.0  # only batch 64: its epochs × 64/32
    bigger = parse({"train.batch_size": 128, "train.epochs": 2}).model_dump()
    assert estimates.estimate(bigger, known, HOST) == 252.5  # batch 64's epochs: an upper bound
    assert estimates.eta([_run(1), _run(2)], known, jobs=2, host=HOST) == "ETA 4 min"
    assert estimates.eta([_run(1), _run(2)], known, jobs=1, host=HOST) == "ETA 8 min"
    unlike = parse({"train.model": "cnn-pad"}).model_dump()
    assert estimates.estimate(unlike, known, HOST) is None  # another model: not similar
    no = studies.PlannedRun("t", "x", 0, {}, unlike, records.identity(unlike), Path("x"))
    assert (
        estimates.eta([_run(1), no], known, 1, HOST)
        == "ETA 4 min for 1 of 2 runs (1 have no similar record)"
    )
    none = estimates.eta([no], known, 1, HOST)
    assert none == "no estimate (none of the 1 runs has a similar record)"
    assert estimates.estimate(_run(1).params, known, "NVIDIA H200, AMD EPYC (16 CPUs)") is None
    # a GPU's run is not priced from a CPU's records
    gn = parse({"norm": "gn", "train.epochs": 2}).model_dump()
    assert estimates.estimate(gn, known, HOST) == 252.5  # no gn record: bn's price it
    slow = record_dict(gn) | {"seconds": 400.0}
    assert estimates.estimate(gn, [*known, records.validate(slow, "b")], HOST) == 400.0
    assert estimates.duration(7300) == "2 h 02 min"


def test_the_eta_counts_a_running_run_at_its_own_pace_from_its_progress_file(tmp_path):
    known = [records.validate(record_dict(_run().params), "a")]
    share = Share(Leases(tmp_path / "leases"), known, print, tmp_path / "progress")
    runs = [_run(1), _run(2), _run(3)]
    paced = {"epoch": 1, "epochs": 2, "step": 50, "steps": 100, "seconds_per_epoch": 40.0}
    (tmp_path / "progress").mkdir()
    progress.run_path(tmp_path / "progress", runs[0].key).write_text(json.dumps(paced))
    starting = {**paced, "epoch": 0, "step": 0, "seconds_per_epoch": None}
    progress.run_path(tmp_path / "progress", runs[1].key).write_text(json.dumps(starting))
    running = share.running_left(runs)  # the third has no progress file yet
    assert running == {runs[0].label: 20.0}  # half an epoch of 40 s left; no pace: priced
    assert estimates.eta(runs, known, 1, HOST, running) == "ETA 9 min"  # 20 s + 2 × 252.5 s
    assert estimates.eta(runs, known, 1, HOST) == "ETA 13 min"  # all three at their price


def test_the_worker_command_line_takes_one_json_job(tmp_path):
    job = worker.Job("t", "bn", 0, _run().params, str(tmp_path / "s0.json"), concurrent=1)
    assert worker.Job(**json.loads(json.dumps(job.__dict__))) == job
    with pytest.raises(NormlabError, match="usage: python -m normlab.analysis.study.worker"):
        worker.main([])


def test_a_record_names_the_code_its_run_started_from_and_a_change_meanwhile(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setattr(worker, "code_version", lambda: "a" * 40)
    job = worker.Job("t", "bn", 0, _run().params, "s0.json", concurrent=1)
    monkeypatch.setattr(worker, "code_version", lambda: "b" * 40)  # a commit while it trains
    params = config.Params.model_validate(job.params)
    prep = SimpleNamespace(device="cpu", precision="float32")
    fields = worker._run_fields(job, params, prep)
    assert fields["code"] == "a" * 40 and fields["code_at_end"] == "b" * 40
    assert fields["started"] == job.started <= fields["ended"]


def test_code_version_ignores_commits_of_records_only(tmp_path, monkeypatch):
    """Records committed as a study runs move HEAD, not the code: the version stays put."""
    import subprocess

    def git(*args: str) -> str:
        ident = ["-c", "user.name=t", "-c", "user.email=t@t.invalid"]
        done = subprocess.run(["git", *ident, *args], cwd=tmp_path, capture_output=True, text=True)
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-qm", "code")
    code = git("rev-parse", "HEAD")
    (tmp_path / "results" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "s0.json").write_text("{}\n")
    git("add", "-A")
    git("commit", "-qm", "record")
    monkeypatch.chdir(tmp_path)
    assert worker.code_version() == code
    (tmp_path / "code.py").write_text("x = 2\n")
    assert worker.code_version() == code + "-dirty"


def test_a_run_that_diverges_writes_a_divergence_record_and_is_not_retrained(
    tmp_path, monkeypatch, capsys
):
    text = TINY.format(epochs=1, batch=64, variants="      bn: {norm: bn, train.lr: 1.0e+6}")
    repo = tiny_repo(tmp_path / "repo", text)
    first = study(repo, "run", "--file", "studies/t.yaml", "--commit")
    assert first.returncode == 0, first.stdout + first.stderr
    # committed like a record: a fresh clone of the study does not train it again
    last = git("log", "-1", "--format=%s", "--name-only", cwd=repo).stdout.split()
    assert last == ["record:", "t/bn/s0:", "diverged", "results/t/runs/t/bn/s0.diverged.json"]
    # the worker exited 2 with loop.fit's one line, having written the divergence record
    assert "diverged t/bn/s0 after" in first.stdout
    assert "(exit 2: error: diverged at epoch 1, step" in first.stdout  # its log's last line
    (log,) = (repo / ".normlab/logs").glob("*/t-bn-s0.log")
    lines = log.read_text().splitlines()
    assert lines[-1].startswith("error: diverged at epoch 1, step") and "Traceback" not in lines
    assert first.stderr == ""
    assert "0/1 runs have records under results/t/runs; diverged: t/bn/s0" in first.stdout
    path = repo / "results/t/runs/t/bn/s0.diverged.json"
    gone = store.read(path, records.Diverged)
    assert gone.error.startswith("diverged at epoch 1") and len(gone.code) == 40
    assert not (repo / "results/t/runs/t/bn/s0.json").exists() and checkpoints(repo) == []

    monkeypatch.chdir(repo)
    monkeypatch.setenv("NORMLAB_CACHE", env_for(repo)["NORMLAB_CACHE"])
    cli.main(["plan", "--file", "studies/t.yaml"])
    out = capsys.readouterr().out
    assert "t/bn/s0  diverged  diverged at epoch 1" in out and "s0.diverged.json to retry" in out
    with pytest.raises(SystemExit) as again:
        cli.main(["run", "--file", "studies/t.yaml"])
    out = capsys.readouterr().out
    assert again.value.code == 0 and "0 to train" in out and "start " not in out
    assert "diverged: t/bn/s0 (delete its s<seed>.diverged.json to retry), not retrained" in out
    path.unlink()  # deleting it retries the run
    cli.main(["plan", "--file", "studies/t.yaml"])
    assert "1 runs: 0 done, 1 to run" in capsys.readouterr().out


def test_a_worker_that_wrote_a_divergence_record_is_reported_diverged_not_failed(tmp_path):
    out = io.StringIO()
    run = dataclasses.replace(_run(), path=tmp_path / "s0.json")
    store.diverged_path(run.path).write_text("{}")
    work = _runner(tmp_path, [], out)
    work.finish(pool.Active(run, 1, _Exited(2), time.monotonic(), tmp_path / "log"), 2)
    assert work.failed == [] and work.diverged == ["t/bn/s0"] and not work.pending
    assert "diverged t/bn/s0" in out.getvalue() and "delete it to retry" in out.getvalue()
