"""`run --deadline --resume-later`: a run that cannot end before the deadline starts anyway when
nothing else fits, is stopped at the deadline with its epochs checkpointed, and resumes on a
rerun; a run that resumes is priced for its epochs left."""

import io
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from test_pool import _run, _runner
from test_sharing import start_runner

from helpers import env_for, record_dict, study_text, tiny_repo
from normlab.analysis.study import cli, deadline, records, store
from normlab.analysis.study.processes import Active
from normlab.errors import NormlabError
from normlab.train import checkpoint


def save_checkpoint(params: dict, epochs: int, fingerprint: str | None = None) -> None:
    """A checkpoint in normlab's cache holding `epochs` epochs of the run (`fingerprint`: whose)."""
    own = checkpoint.fingerprint(params)
    state = {"fingerprint": fingerprint or own, "history": [{"epoch": e} for e in range(epochs)]}
    path = checkpoint.cache_path(own)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def test_with_nothing_that_fits_a_run_of_which_an_epoch_fits_starts_under_resume_later(tmp_path):
    known = [records.validate(record_dict(_run().params), "a")]  # 252.5 s: 2 epochs of 126 s
    runs = [_run(1), _run(2)]
    strict = _runner(tmp_path / "a", runs, io.StringIO(), known, deadline=time.monotonic() + 150)
    assert strict.next_run() is None  # without --resume-later: it would not end in time
    out = io.StringIO()
    later = _runner(
        tmp_path / "b", runs, out, known, deadline=time.monotonic() + 150, resume_later=True
    )
    assert later.next_run() == (_run(1), 1)  # an epoch ends in time: the first (longest) starts
    assert out.getvalue() == (
        "t/bn/s1 should not end before the deadline: it starts anyway, to resume later\n"
    )
    later.deadline.at = time.monotonic() + 100  # not even one epoch would end by then
    assert later.next_run() is None and list(later.pending) == [(_run(2), 1)]


def test_a_run_that_resumes_is_priced_for_the_epochs_its_checkpoint_lacks(tmp_path):
    known = [records.validate(record_dict(_run().params), "a")]
    save_checkpoint(_run(1).params, 1)
    assert deadline.epochs_checkpointed(_run(1).params) == 1
    work = _runner(tmp_path, [_run(2), _run(1)], io.StringIO(), known)
    work.deadline.at = time.monotonic() + 150  # 126 s left for s1, 252.5 s for s2
    assert work.next_run() == (_run(1), 1) and work.next_run() is None
    save_checkpoint(_run(2).params, 1, fingerprint="other code")  # not this run's: no epochs
    assert deadline.epochs_checkpointed(_run(2).params) == 0
    checkpoint.cache_path(checkpoint.fingerprint(_run(3).params)).write_bytes(b"not torch")
    assert deadline.epochs_checkpointed(_run(3).params) == 0


def test_at_the_deadline_a_worker_is_stopped_its_lease_given_back_and_its_epochs_named(tmp_path):
    out = io.StringIO()
    run = _run()
    work = _runner(tmp_path, [], out, deadline=time.monotonic() - 1, resume_later=True)
    assert work.share.take(run, work.share.clock()) == "taken"
    save_checkpoint(run.params, 1)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    work.active.append(Active(run, 1, sleeper, time.monotonic(), tmp_path / "log"))
    assert work.deadline.passed()
    work.stop_all()
    assert sleeper.poll() is not None and not work.active and not work.failed
    assert work.stopped == ["t/bn/s0"] and not work.share.holds("t/bn/s0")
    assert out.getvalue() == (
        "stopped at the deadline: t/bn/s0: 1 of 2 epochs checkpointed; rerun to continue\n"
    )


def test_resume_later_needs_a_deadline():
    with pytest.raises(NormlabError, match=r"^--resume-later: give a --deadline too"):
        cli.main(["run", "--resume-later"])


def test_a_run_stopped_at_the_deadline_resumes_on_a_rerun_and_trains_each_epoch_once(tmp_path):
    repo = tiny_repo(tmp_path / "repo", study_text(epochs=60, variants=("bn",)))
    first = start_runner(
        repo, "--deadline", "8s", "--resume-later", worker="stub_worker", epoch_s=0.2
    )
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    stop = re.search(
        r"^stopped at the deadline: t/bn/s0: (\d+) of 60 epochs checkpointed; "
        r"rerun to continue$",
        out,
        re.M,
    )
    assert stop, out
    assert "0/1 runs have records" in out and not (repo / "results/t/runs/t/bn/s0.json").exists()
    assert list((repo / ".normlab/leases").glob("*.lease")) == []
    assert list((repo / ".normlab/progress").glob("*.json")) == []

    again = start_runner(repo, worker="stub_worker", epoch_s=0.2)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0 and "1/1 runs have records" in out, out
    kept = int(stop.group(1))
    if kept:  # the rerun resumed from exactly the epochs the stop named
        log = "".join(p.read_text() for p in (repo / ".normlab/logs").glob("*/t-bn-s0.log"))
        assert f": {kept} of 60 epochs done" in log
    trained = Path(env_for(repo)["NORMLAB_CACHE"]) / "trained.txt"
    epochs = Counter(int(e) for _, e, _ in map(str.split, trained.open()))
    assert epochs == Counter(range(1, 61))  # none trained twice: the stop lost none kept
    history = store.read(repo / "results/t/runs/t/bn/s0.json").history
    assert [h["epoch"] for h in history] == list(range(1, 61))
