"""The one exception type users see, and the stage entry point that turns it into one line.

Anything a user can cause (a bad param, a missing or corrupt data file, a diverged run) raises
`NormlabError` with a message that names the key or file and what is allowed. `run_stage`
prints that message and exits non-zero, so nobody has to read a traceback to fix a typo.
"""

import sys
from collections.abc import Callable


class NormlabError(Exception):
    """A problem the user can fix; the message is the whole explanation."""


class InputError(NormlabError):
    """A bad value in one named input (params.yaml, a layout): the message is '<where>: <detail>'.

    A caller that knows better where the value came from (a study file's variant, `--set`)
    rewords it from `detail`, rather than cutting the message apart."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.detail = detail


class DivergedError(NormlabError):
    """Training met a non-finite loss. A result, not a fault: the same run diverges again, so
    a study records it (normlab.analysis.study.worker) rather than retrying, and recognises it
    by this type, never by its message."""

    @classmethod
    def at(cls, epoch: int, step: int, loss: float) -> "DivergedError":
        """The error for a loss that was not finite at this epoch and step (1-based)."""
        return cls(f"diverged at epoch {epoch}, step {step} (loss={loss}): lower lr or l1")


def run_stage(stage: Callable[[], None]) -> None:
    """Run a stage's main(); turn user errors and Ctrl-C into one line and a non-zero exit."""
    try:
        stage()
    except NormlabError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: outputs already written are intact; rerun to resume", file=sys.stderr)
        sys.exit(130)
