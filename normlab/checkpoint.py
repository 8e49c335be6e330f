"""Per-epoch checkpoints, so a killed run resumes where it stopped instead of starting over.

A checkpoint is only resumed by the run it belongs to: it carries a fingerprint of the
resolved params and the library's source, and anything else starts fresh.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from normlab.io import atomic_path


def fingerprint(params: dict) -> str:
    """Hash of the run's params and of normlab's code: change either and training restarts."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


class Checkpoint:
    """model/optimizer/scheduler state, epoch history and time spent, at `path`."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint

    def save(self, model: nn.Module, opt, sched, run, seconds: float) -> None:
        state = {"fingerprint": self.fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "history": run.history, "seconds": seconds}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def restore(self, model: nn.Module, opt, sched, run) -> float:
        """Load a matching checkpoint into the objects; return the seconds it had spent (0 if none)."""
        if not self.path.exists():
            return 0.0
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt or foreign file is not worth a crash: start fresh
            print(f"ignoring checkpoint {self.path}: unreadable ({type(err).__name__})")
            return 0.0
        if state.get("fingerprint") != self.fingerprint or len(state["history"]) >= run.epochs:
            return 0.0
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        run.history[:] = state["history"]
        print(f"resuming from {self.path}: {len(run.history)} of {run.epochs} epochs done")
        return float(state["seconds"])
