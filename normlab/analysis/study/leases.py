"""Leases: runners that share a filesystem (several `make study` in one checkout, SLURM array
tasks, SSH hosts on NFS) train each run once, with no server to ask.

A runner takes a run by creating its lease file exclusively (O_CREAT | O_EXCL: of two runners
racing for it, one gets it), and holds it while the run trains: the runner and its worker touch
the file every few seconds, so its mtime, as the file server stamps it, is a heartbeat. A lease
whose heartbeat is older than the expiry (EXPIRY_S unless `--lease-expiry` says otherwise; give
every runner the same) belongs to a runner that died or lost the filesystem: another runner
takes the run over, and resumes it from its checkpoint when the checkpoint cache is shared
(`NORMLAB_CACHE` on the shared filesystem). On its own host a runner need not wait that long: a
lease whose runner process is gone is dead at once.

Taking over must be exclusive too, so a lease file is numbered: `<run id>.<n>.lease`. The
runner that finds lease n expired creates n + 1 (exclusively: one wins) and deletes n. A holder
still holds its lease while its file is there with its token in it and no later number exists;
it checks that before it writes the run's record, so a run taken over is recorded once.
"""

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(".normlab/leases")  # in the checkout: git and DVC ignore .normlab/
EXPIRY_S = 300.0  # a heartbeat older than this: the holder is gone (README says so)
BEAT_S = 5.0  # how often holders touch their leases, at most (see `beat_every`)


@dataclass(frozen=True)
class Lease:
    """A run this runner holds: its lease file and the token written in it."""

    path: Path
    token: str


def run_id(key: str) -> str:
    """A short file name for a run, the same on every host: a hash of its identity key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def new_token() -> str:
    """Who holds a lease: host and process, plus a random part (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat_every(expiry_s: float) -> float:
    """Seconds between heartbeats: several per expiry, so one late beat never looks dead."""
    return min(BEAT_S, expiry_s / 4)


def server_now(folder: Path) -> float:
    """The file server's clock: the mtime of a file created now in `folder`. Heartbeats are
    the server's mtimes too, so hosts whose clocks disagree still agree on a lease's age."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".clock.")
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(name)


def read(path: Path) -> dict:
    """A lease file's content ({} while its creator is still writing it, or once it is gone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _numbers(folder: Path, rid: str) -> list[int]:
    """The numbers of the run's lease files, in order."""
    found = (p.name.split(".")[1] for p in folder.glob(f"{rid}.*.lease"))
    return sorted(int(n) for n in found if n.isdigit())


def _file(folder: Path, rid: str, number: int) -> Path:
    return folder / f"{rid}.{number}.lease"


def ended(holder: dict) -> bool:
    """Whether a holder (a lease's runner, a progress file's writer: `host` and `pid`) was on
    this host and its process has ended."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def held(lease: Lease) -> bool:
    """Whether `lease` is still its holder's: its file there with its token, none after it."""
    rid, number = lease.path.name.split(".")[:2]
    later = [n for n in _numbers(lease.path.parent, rid) if n > int(number)]
    return not later and read(lease.path).get("token") == lease.token


def beat(lease: Lease) -> bool:
    """Touch the lease (the server stamps the time); False when its file is gone."""
    try:
        os.utime(lease.path)
    except FileNotFoundError:
        return False
    return True


def release(lease: Lease) -> bool:
    """Delete the lease if it is still ours (the run is recorded, or this runner gives it up);
    whether it was."""
    if not held(lease):
        return False
    with contextlib.suppress(FileNotFoundError):
        lease.path.unlink()
    return True


class Leases:
    """This runner's side of the lease folder: take runs, say who holds the others."""

    def __init__(self, folder: Path = FOLDER, expiry_s: float = EXPIRY_S):
        self.folder, self.expiry_s = folder, expiry_s
        self.token = new_token()

    def _live(self, path: Path, now: float) -> dict | None:
        """The content of the lease at `path` ({} while being written) if it is live."""
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # released meanwhile
            return None
        content = read(path)
        return None if age > self.expiry_s or ended(content) else content

    def holder(self, key: str, now: float | None = None) -> dict | None:
        """Who holds the run's live lease ({} while being written); None if nobody does."""
        rid = run_id(key)
        numbers = _numbers(self.folder, rid)
        if not numbers:
            return None
        now = server_now(self.folder) if now is None else now
        return self._live(_file(self.folder, rid, numbers[-1]), now)

    def take(self, key: str, label: str, now: float | None = None) -> Lease | None:
        """The run's lease if nobody holds it (no lease, or the last one expired), else None.
        `now`: the server's time (`server_now`), read once for a scan over many runs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        rid = run_id(key)
        numbers = _numbers(self.folder, rid)
        if numbers:
            now = server_now(self.folder) if now is None else now
            if self._live(_file(self.folder, rid, numbers[-1]), now) is not None:
                return None
        # One number past the last seen, never past a later one: if another runner took the
        # run over meanwhile, that number exists and this create fails.
        path = _file(self.folder, rid, numbers[-1] + 1 if numbers else 0)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another runner was quicker
            return None
        with os.fdopen(fd, "w") as f:
            json.dump(self._content(label), f)
        for number in numbers:  # the expired ones: their holders see they lost the run
            with contextlib.suppress(FileNotFoundError):
                _file(self.folder, rid, number).unlink()
        return Lease(path, self.token)

    def _content(self, label: str) -> dict:
        return {
            "label": label,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": self.token,
            "taken": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
