"""Retrain the run behind one record from scratch and say how its numbers compare with it:
`python -m normlab.analysis.study verify results/runs/norms/bn/s0.json`.

Identical digits are expected on the same machine type and precision; across machine types,
the same run statistically, not digit for digit.
"""

import tempfile
from pathlib import Path

from normlab.analysis.study import store, worker
from normlab.analysis.study.records import Diverged, Record
from normlab.errors import DivergedError, NormlabError
from normlab.train.device import absence


def _compare(name: str, new: float, old: float, unit: str = "") -> tuple[str, bool]:
    if new == old:
        return f"{name}: {new}{unit} (record {old}{unit}): identical", True
    return f"{name}: {new}{unit} vs record {old}{unit} ({new - old:+.4g}{unit})", False


def compare(old: Record, new: Record) -> tuple[list[str], bool]:
    """Lines comparing a retrained run with its record, and whether they are identical."""
    checks = [
        _compare("final acc", new.final.acc, old.final.acc, " %"),
        _compare("final loss", new.final.loss, old.final.loss),
        _compare("best acc", new.best.acc, old.best.acc, " %"),
        _compare("best epoch", new.best.epoch, old.best.epoch),
    ]
    a = [h["test/acc"] for h in old.history]
    b = [h["test/acc"] for h in new.history]
    diffs = [(abs(x - y), i + 1) for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b):
        checks.append((f"test acc per epoch: {len(b)} epochs vs record {len(a)}", False))
    elif diffs:
        worst, epoch = max(diffs)
        checks.append(
            (
                f"test acc per epoch: {len(diffs)} of {len(a)} epochs differ, most by "
                f"{worst:.4g} points (epoch {epoch})",
                False,
            )
        )
    else:
        checks.append((f"test acc per epoch: identical over {len(a)} epochs", True))
    return [line for line, _ in checks], all(same for _, same in checks)


def verify(path: Path, device: str | None = None) -> int:
    """Retrain the run behind one record from scratch; exit code 0 if it reproduces exactly.

    `device` replaces the record's (a run made with device: cuda, checked on a CPU): where a
    run goes is not part of what it is, though its digits may differ there."""
    old = store.read(path)
    params = {**old.params, "device": device or old.params["device"]}
    if device and (reason := absence(device)):  # one line naming the option, before any work
        raise NormlabError(f"--device {device}: {reason}")
    worker.ensure_data(old.dataset)
    print(
        f"retraining {old.label()} from {path}: recorded on {old.host} ({old.precision}, "
        f"{old.seconds:.0f} s, code {old.code[:12]})",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="normlab-verify-") as tmp:
        job = worker.Job(
            old.study,
            old.variant,
            old.seed,
            params,
            str(Path(tmp) / "s.json"),
            concurrent=1,
            checkpoint=str(Path(tmp) / "checkpoint.pt"),
        )
        new, _ = worker.work(job)
    if isinstance(new, Diverged):  # the record's run trained: this one did not, say so
        raise DivergedError(new.error)
    lines, same = compare(old, new)
    print(f"retrained on {new.host} ({new.precision}, {new.seconds:.0f} s, code {new.code[:12]})")
    print("\n".join(lines))
    if same:
        print(f"verdict: identical to {path}")
    else:
        place = "the same" if (old.host, old.precision) == (new.host, new.precision) else "another"
        print(
            f"verdict: differs from {path} (on {place} machine type and precision; across "
            "machine types expect the same run statistically, not digit for digit)"
        )
    return 0 if same else 1
