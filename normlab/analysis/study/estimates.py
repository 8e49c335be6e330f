"""How long planned runs should take, priced from the records of similar runs.

A study's plan and run print these, so a user knows before starting whether a study fits the
session (or the lent machine) at hand, and `run --deadline` starts only the runs that fit.
The price is per epoch, so a 20-epoch record prices a 25-epoch run; and only records made on
this machine (its `host`) price a run here: a GPU and a CPU take very different times.
"""

from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.records import Record


def _kind(params: dict) -> tuple:
    """Runs whose epochs are alike but for the batch size: same data, amount and model."""
    return params["dataset"], params["limit"], params["recipe"]["model"]


def estimate(params: dict, known: list[Record], host: str) -> float | None:
    """Seconds a run should take on `host`: the mean seconds per epoch of similar records made
    there × its epochs; None if there are none. Similar: same data, amount and model, and the
    same batch size, else the nearest smaller one: an epoch at a smaller batch takes more steps,
    so its price is an upper bound, which keeps `--deadline` safe. With only larger batch sizes
    known, the nearest one's epoch × the ratio of steps (larger / own batch): a step of a
    smaller batch does less work than one of a larger, so that too bounds it, loosely. Records
    of its own norm, when there are some: on the resnet, GroupNorm's and LayerNorm's epochs take
    markedly longer than BatchNorm's."""
    here = [r for r in known if r.host == host and _kind(r.params) == _kind(params)]
    if not here:
        return None
    batch = params["recipe"]["batch_size"]
    sizes = [r.params["recipe"]["batch_size"] for r in here]
    nearest = max((b for b in sizes if b <= batch), default=min(sizes))
    similar = [r for r in here if r.params["recipe"]["batch_size"] == nearest]
    own_norm = [r for r in similar if r.params["norm"] == params["norm"]]
    per_epoch = [r.seconds / r.params["recipe"]["epochs"] for r in own_norm or similar]
    steps = max(nearest / batch, 1.0)  # > 1 only when priced from a larger batch
    return sum(per_epoch) / len(per_epoch) * steps * params["recipe"]["epochs"]


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min"


def eta(runs: list[PlannedRun], known: list[Record], jobs: int, host: str) -> str:
    """'ETA 12 min' for these runs on `host` at `jobs` at a time; for part of them when the
    others have no similar record made there, which it says."""
    if not runs:
        return "nothing left"
    guesses = [g for g in (estimate(r.params, known, host) for r in runs) if g is not None]
    missing = len(runs) - len(guesses)
    if not guesses:
        return f"no estimate (none of the {len(runs)} runs has a similar record)"
    time = f"ETA {duration(sum(guesses) / min(jobs, len(guesses)))}"
    if missing:
        return f"{time} for {len(guesses)} of {len(runs)} runs ({missing} have no similar record)"
    return time
