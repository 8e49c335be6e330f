"""Per-epoch checkpoints, so a killed run resumes where it stopped instead of starting over.

A checkpoint lives outside every DVC output, in a cache folder, named by the run's
fingerprint: DVC checks out a baseline's outputs before `dvc exp run` reproduces, which
would delete a checkpoint kept among them. The fingerprint hashes the resolved params and
the source of every repository file the train stage runs, so a checkpoint is resumed only by
the run it belongs to; a foreign or stale one is never even looked at. Checkpoints are
loaded with weights_only=True: no pickled code runs.
"""

import ast
import hashlib
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from normlab.io import atomic_path

ROOT = Path(__file__).resolve().parents[2]
TRAIN_ENTRY = ROOT / "stages" / "train.py"
CACHE_ENV = "NORMLAB_CACHE"
KEEP_DAYS = 14  # checkpoints of runs nobody resumed within this long are deleted


def closure(entry: Path | None = None) -> list[Path]:
    """Every repository module `entry` (default: the train stage) imports, directly or not
    (entry included), sorted.

    Found by reading the import statements (functions' bodies too), so a module imported only
    on some paths (e.g. for torch.compile) is part of the run's code as well.
    """
    seen: set[Path] = set()
    entry = (entry or TRAIN_ENTRY).resolve()
    todo = [entry, *[p for p in [entry.parent / "__init__.py"] if p.is_file()]]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                # importing a.b.c runs a/__init__.py and a/b/__init__.py first
                packages = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
                for candidate in (
                    *packages,
                    ROOT.joinpath(*parts).with_suffix(".py"),
                    ROOT.joinpath(*parts, "__init__.py"),
                ):
                    if candidate.is_file():
                        todo.append(candidate.resolve())
    return sorted(seen)


def fingerprint(params: dict) -> str:
    """Hash of the run's params and of the code it runs: change either and training restarts."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for source in closure():
        digest.update(str(source.relative_to(ROOT)).encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """$NORMLAB_CACHE, else $XDG_CACHE_HOME/normlab, else ~/.cache/normlab."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "normlab"


def cache_path(fingerprint: str) -> Path:
    """Where the checkpoint of the run with this fingerprint lives (DVC's queue workspaces too)."""
    return cache_dir() / "checkpoints" / f"{fingerprint[:24]}.pt"


def prune(keep_days: float = KEEP_DAYS) -> None:
    """Delete checkpoints untouched for `keep_days`: runs that were abandoned, not resumed."""
    cutoff = time.time() - keep_days * 86400
    for old in (cache_dir() / "checkpoints").glob("*.pt"):
        if old.stat().st_mtime < cutoff:
            old.unlink(missing_ok=True)


class Checkpoint:
    """model/optimizer/scheduler state, epoch history and time spent, at `path`."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint

    def save(self, model: nn.Module, opt, sched, history: list[dict], seconds: float) -> None:
        state = {
            "fingerprint": self.fingerprint,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "history": history,
            "seconds": seconds,
        }
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def restore(self, model: nn.Module, opt, sched, epochs: int) -> tuple[list[dict], float]:
        """Load a matching checkpoint into the objects; return its history and seconds spent
        (empty and 0 when there is none to resume)."""
        if not self.path.exists():
            return [], 0.0
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # a corrupt or foreign file is not worth a crash: start fresh
            print(f"ignoring checkpoint {self.path}: unreadable ({type(err).__name__})")
            return [], 0.0
        if state.get("fingerprint") != self.fingerprint or len(state["history"]) >= epochs:
            return [], 0.0
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        print(f"resuming from {self.path}: {len(state['history'])} of {epochs} epochs done")
        return list(state["history"]), float(state["seconds"])

    def remove(self) -> None:
        """Delete the checkpoint once its run's outputs are safely written."""
        self.path.unlink(missing_ok=True)
