"""One run of a study, in-process: train it with the training library, score it, write its
record (and, for a dataset the repo does not ship, its misclassified images) atomically.

    python -m normlab.analysis.study.worker '<job as JSON>'

normlab.analysis.study.pool starts one such process per run; `verify`
(normlab.analysis.study.retrain) calls `work` directly. A run that loop.fit stops with a
DivergedError gets a divergence record (`s<seed>.diverged.json`, records.Diverged) instead,
and the worker still exits 2. The run trains from its per-epoch checkpoint in normlab's cache
(`checkpoint.cache_path`) when one is there, so a killed worker's run resumes on its restart.

Started by a runner, a worker also keeps its run's progress file and lease fresh
(progress.Tracker), and writes the record only while its lease is still its runner's: a run
another runner took over (its lease expired) is recorded by that one; this worker exits 3.
"""

import dataclasses
import json
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from normlab import config
from normlab.analysis.study import leases, records, store
from normlab.analysis.study.cost import steps_per_epoch
from normlab.analysis.study.leases import Lease
from normlab.analysis.study.progress import EVERY_S, Tracker
from normlab.analysis.study.records import Diverged, Record
from normlab.data import fetch, specs
from normlab.errors import DivergedError, NormlabError, run_stage
from normlab.paths import RAW
from normlab.train import checkpoint, device, plots, run
from normlab.train.metrics import misclassified
from normlab.train.prepare import Prepared, prepare

LEASE_LOST = 3  # exit code: another runner took the run over; this one wrote no record


@dataclass(frozen=True)
class Job:
    """What one worker is told to do (JSON on its command line)."""

    study: str
    variant: str
    seed: int
    params: dict
    record: str  # path of the record to write
    concurrent: int  # runs this machine trains at once, this one included
    checkpoint: str | None = None  # None: normlab's cache, keyed by fingerprint (resumable)
    # Set when the job starts (not when its record is written): which code trained it, from when.
    code: str = field(default_factory=lambda: code_version())
    started: str = field(default_factory=lambda: now())
    # From a runner: the run's lease (file and token), its progress file, and how often to
    # refresh both (None: a worker on its own, e.g. `verify`'s, keeps neither).
    lease: str | None = None
    token: str | None = None
    progress: str | None = None
    beat_s: float = EVERY_S

    @property
    def label(self) -> str:
        return f"{self.study}/{self.variant}/s{self.seed}"


class LeaseLost(NormlabError):
    """The run's lease expired and another runner holds it now: it records the run."""


def _git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def code_version() -> str:
    """The last commit that changed anything but results/, with -dirty when tracked files
    outside results/ differ from it. Records committed as a study runs move HEAD but not the
    code, so every run of one study names the same commit, and it survives a cherry-pick of
    the record commits onto another branch."""
    outside = ("--", ".", ":(exclude)results")
    head = _git("log", "-1", "--format=%H", *outside)
    if not head:
        return "unknown (not a git repository)"
    dirty = _git("status", "--porcelain", "--untracked-files=no", *outside)
    return head + ("-dirty" if dirty else "")


def now() -> str:
    """The time a record stamps: UTC, to the second, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def data_files(dataset: str) -> tuple[str, ...]:
    """The files of data/raw/<dataset>/ that training reads."""
    return specs.CIFAR_MEMBERS if specs.spec(dataset).format == "cifar" else specs.IDX_FILES


def ensure_data(dataset: str) -> None:
    """Download (md5-checked) a dataset whose files are not all in data/raw/<dataset>/ yet."""
    root = RAW / dataset
    if not all((root / name).is_file() for name in data_files(dataset)):
        for line in fetch.download(dataset, root):
            print(line, flush=True)


def shipped(dataset: str) -> bool:
    """Whether git carries the dataset (data/<dataset>/, MNIST): then a clone can redraw a
    misclassified grid from test indices; otherwise the record keeps the images beside it."""
    return bool(_git("ls-files", "--", str(fetch.SHIPPED / dataset)))


def _misclassified(actual: np.ndarray, predicted: np.ndarray, confidence: np.ndarray) -> dict:
    wrong = misclassified(actual, predicted)
    return {
        "index": wrong.tolist(),
        "predicted": predicted[wrong].tolist(),
        "actual": actual[wrong].tolist(),
        "confidence": [round(float(c), 4) for c in confidence[wrong]],
    }


def checkpoint_of(job: Job) -> checkpoint.Checkpoint:
    """The job's own checkpoint path, or the cache's, keyed by the run's params and code."""
    fingerprint = checkpoint.fingerprint(job.params)
    path = Path(job.checkpoint) if job.checkpoint else checkpoint.cache_path(fingerprint)
    return checkpoint.Checkpoint(path, fingerprint)


def _run_fields(job: Job, params: config.Params, prep: Prepared) -> dict:
    """What every record of the run says (records._RunRecord): which run, where, what code,
    when. `code` is the commit the run started from; a tree that changed meanwhile is named."""
    at_end = code_version()
    return {
        "schema": records.SCHEMA,
        "study": job.study,
        "variant": job.variant,
        "seed": job.seed,
        "dataset": params.dataset,
        "key": records.identity(job.params),
        "params": job.params,
        "device": str(prep.device),
        "precision": prep.precision,
        "torch": str(torch.__version__),
        "host": device.host(),
        "code": job.code,
        "started": job.started,
        "ended": now(),
        "code_at_end": None if at_end == job.code else at_end,
    }


def _tracked(prep: Prepared, tracker: Tracker | None) -> Prepared:
    """`prep` with a batcher that counts the training steps for `tracker`; the same otherwise
    (the batcher is called once per step: loop.fit needs no hook of its own)."""
    if tracker is None:
        return prep
    return dataclasses.replace(prep, batcher=tracker.batcher(prep.batcher))


def work(job: Job, tracker: Tracker | None = None) -> tuple[Record | Diverged, np.ndarray | None]:
    """Train and score one run; return its record and, for a dataset the repo does not ship,
    the misclassified test images (the grid must be redrawable from the repo alone). A run that
    diverged is a result too: its divergence record (who, what, where, and the message).
    `tracker`, if given, is told every step and every epoch."""
    params = config.Params.model_validate(job.params)
    prep = prepare(params)
    saved = checkpoint_of(job)
    log = None if tracker is None else tracker.epoch
    try:
        fitted = run.train(params, _tracked(prep, tracker), saved, log)
    except DivergedError as err:
        return Diverged.model_validate({**_run_fields(job, params, prep), "error": str(err)}), None
    scored = run.score(params, prep, fitted.history)
    ev, actual, predicted, metrics = (
        scored.evaluation,
        scored.actual,
        scored.predicted,
        scored.metrics,
    )
    wrong = _misclassified(actual, predicted, ev.confidence.numpy())
    record = Record.model_validate(
        {
            **_run_fields(job, params, prep),
            "history": fitted.history,
            "final": metrics["test"],
            "best": {k: metrics["best"][k] for k in ("acc", "epoch")},
            "train": metrics["train"],
            "gap": metrics["gap"],
            "learned": metrics["learned"],
            "per_class_acc": metrics["per_class_acc"],
            "confusion": plots.confusion_matrix(actual, predicted, len(prep.classes)).tolist(),
            "misclassified": wrong,
            "param_count": metrics["params"],
            "weights": metrics["weights"],
            "seconds": round(fitted.seconds, 2),
            "data_md5": {
                n: fetch.md5(RAW / params.dataset / n) for n in data_files(params.dataset)
            },
            "packed": 1,
            "concurrent": job.concurrent,
            "dvc": None,
            "val": metrics.get("val"),
        }
    )
    if shipped(params.dataset):
        return record, None
    index = torch.as_tensor(wrong["index"], dtype=torch.long, device=prep.test.images.device)
    return record, prep.test.images[index].cpu().numpy()


def tracker_of(job: Job) -> Tracker | nullcontext:
    """The job's progress tracker (a no-op context when no runner asked for one)."""
    if job.progress is None:
        return nullcontext()
    about = {
        "label": job.label,
        "record": job.record,
        "host": socket.gethostname(),
        "runner": job.token,
        "started": job.started,
    }
    lease = Lease(Path(job.lease), job.token or "") if job.lease else None
    shape = job.params["recipe"]["epochs"], steps_per_epoch(job.params)
    return Tracker(Path(job.progress), about, shape, lease, job.beat_s)


def check_lease(job: Job) -> None:
    """Before a record is written: the run must still be this runner's (see leases.held)."""
    if job.lease and not leases.held(Lease(Path(job.lease), job.token or "")):
        raise LeaseLost(
            f"{job.label}: lease {job.lease} expired and another runner took the run over; "
            "it writes the record (no record written here)"
        )


Train = Callable[[Job, Tracker | None], tuple[Record | Diverged, np.ndarray | None]]


def main(argv: list[str] | None = None, train: Train = work) -> None:
    """Entry point of a worker: train the job's run, write its record, drop its checkpoint.
    `train` is `work` but in tests, which stand in a worker that only pretends to train."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise NormlabError("usage: python -m normlab.analysis.study.worker '<job as JSON>'")
    job = Job(**json.loads(argv[0]))
    checkpoint.prune()  # abandoned runs' checkpoints, as the train stage does
    ensure_data(job.params["dataset"])
    try:
        with tracker_of(job) as tracker:
            _train_and_record(job, train, tracker)
    except LeaseLost as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(LEASE_LOST)


def _train_and_record(job: Job, train: Train, tracker: Tracker | None) -> None:
    """Train, then write the record (or divergence record) if the run is still this runner's;
    its checkpoint goes only then, since a runner that took the run over resumes from it."""
    record, images = train(job, tracker)
    check_lease(job)
    if isinstance(record, Diverged):  # planning counts it done, the report names it
        path = store.write_diverged(store.diverged_path(Path(job.record)), record)
        checkpoint_of(job).remove()
        print(f"wrote {path}", flush=True)
        raise DivergedError(record.error)  # exit 2: a user error, not worth a retry
    store.write(Path(job.record), record, images)
    checkpoint_of(job).remove()
    print(f"wrote {job.record}: final acc {record.final.acc:.2f} %", flush=True)


if __name__ == "__main__":
    run_stage(main)
