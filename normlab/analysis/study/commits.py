"""Committing each record as it lands (`study run --commit`), so a long study survives its
session being killed: records are what a clone, another machine or the report reads.
"""

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def commit_record(paths: list[Path], message: str, say: Callable[[str], None]) -> None:
    """Commit exactly these paths (others' staged or modified files stay as they are)."""
    names = [str(p) for p in paths]
    for attempt in range(20):  # other people's git commands hold .git/index.lock briefly
        add = subprocess.run(["git", "add", "--", *names], capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(
            ["git", "commit", "-q", "-m", message, "--only", "--", *names],
            capture_output=True,
            text=True,
        )
        if done and done.returncode == 0:
            return
        err = (add if add.returncode else done).stderr.strip()
        if "index.lock" not in err or attempt == 19:
            say(f"warning: could not commit {names[-1]}: {err.splitlines()[-1:]}")
            return
        time.sleep(0.5)
