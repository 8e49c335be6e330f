"""The worker tells a diverged run from a failed one by the exception's type (DivergedError),
never by the words of its message."""

from types import SimpleNamespace

import pytest

from helpers import resolved
from normlab.analysis.study import worker
from normlab.analysis.study.records import Diverged
from normlab.errors import DivergedError, NormlabError


@pytest.fixture
def job(tmp_path, monkeypatch) -> worker.Job:
    """A job whose preparation is stubbed: these tests are about what training raises."""
    prep = SimpleNamespace(device="cpu", precision="float32")
    monkeypatch.setattr(worker, "prepare", lambda params: prep)
    params = resolved({"train.epochs": 2})
    return worker.Job("t", "bn", 0, params, str(tmp_path / "s0.json"), concurrent=1)


def test_a_diverged_error_is_a_divergence_record_whatever_its_words(job, monkeypatch):
    def train(*_):
        raise DivergedError("the loss went to inf at step 3")

    monkeypatch.setattr(worker.run, "train", train)
    record, images = worker.work(job)
    assert isinstance(record, Diverged) and images is None
    assert record.error == "the loss went to inf at step 3" and record.label() == "t/bn/s0"


def test_another_error_that_says_diverged_is_no_divergence(job, monkeypatch):
    def train(*_):
        raise NormlabError("diverged: data/raw/mnist is not where it was")

    monkeypatch.setattr(worker.run, "train", train)
    with pytest.raises(NormlabError, match="^diverged: data/raw/mnist"):
        worker.work(job)
