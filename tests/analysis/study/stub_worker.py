"""A worker that pretends to train, for tests of runners sharing a checkout (`make test`): the
real worker's main (lease, progress file, record, checkpoint removal) around a stand-in for
training that takes STUB_EPOCH_S seconds an epoch, keeps a checkpoint in normlab's cache after
each epoch (its fingerprint and history, as the real one holds them: a killed run resumes from
it, and a runner reads its epochs), and appends `label epoch pid` to
$NORMLAB_CACHE/trained.txt for each epoch it trained.

Runners use it when started as `python -c "<processes.WORKER = 'stub_worker'>; …"` with this
folder and tests/ on PYTHONPATH (test_sharing.start_runner).
"""

import os
import time
from pathlib import Path

import torch

from helpers import record_dict
from normlab.analysis.study import records, worker
from normlab.analysis.study.progress import Tracker
from normlab.errors import run_stage
from normlab.io import atomic_path
from normlab.train import checkpoint


def pretend(job: worker.Job, tracker: Tracker | None) -> tuple[records.Record, None]:
    """Train `job` as a stand-in: its epochs from the checkpoint on, then its record."""
    epochs = job.params["recipe"]["epochs"]
    fingerprint = checkpoint.fingerprint(job.params)
    saved = checkpoint.cache_path(fingerprint)
    history = torch.load(saved, weights_only=True)["history"] if saved.exists() else []
    if history:
        print(f"resuming from {saved}: {len(history)} of {epochs} epochs done", flush=True)
    for entry in history:
        tracker.epoch(entry)
    step = tracker.batcher(lambda images, train: images)
    seconds, steps = float(os.environ.get("STUB_EPOCH_S", "0.3")), tracker.state["steps"]
    for epoch in range(len(history) + 1, epochs + 1):
        for _ in range(steps):
            step(None, train=True)
            time.sleep(seconds / steps)
        history.append({**record_dict(job.params)["history"][epoch - 1], "pid": os.getpid()})
        with atomic_path(saved) as tmp:
            torch.save({"fingerprint": fingerprint, "history": history}, tmp)
        with open(Path(os.environ["NORMLAB_CACHE"]) / "trained.txt", "a") as log:
            log.write(f"{job.label} {epoch} {os.getpid()}\n")
        print(f"epoch {epoch}/{epochs}", flush=True)
        tracker.epoch(history[-1])
    fields = {"study": job.study, "variant": job.variant, "history": history}
    return records.validate({**record_dict(job.params), **fields}, job.record), None


if __name__ == "__main__":
    run_stage(lambda: worker.main(train=pretend))
