"""How long planned runs should take, priced from the records of similar runs.

A study's plan and run print these, so a user knows before starting whether a study fits the
session (or the lent machine) at hand, and `run --deadline` starts only the runs that fit.
The price is per epoch, so a 20-epoch record prices a 25-epoch run, or per step where no record
has the run's batch size (steptime.py); only records made on this machine (its `host`) price a
run here (a GPU and a CPU take very different times), and of those, where any is left, only the
ones not made on a crowded CPU (crowding.py: more runs at once than cores).
"""

from dataclasses import dataclass

from normlab.analysis.study import crowding, steptime
from normlab.analysis.study.cost import steps_per_epoch
from normlab.analysis.study.plan import PlannedRun
from normlab.analysis.study.records import Record


@dataclass(frozen=True)
class Price:
    """Seconds a run should take, and what they were priced from (for `plan` to say)."""

    seconds: float
    how: str  # e.g. "from 3 records", "from step time, 5.1 ms a step"


def _kind(params: dict) -> tuple:
    """Runs whose epochs are alike but for the batch size: same data, amount and model."""
    return params["dataset"], params["limit"], params["recipe"]["model"]


def _batch(params: dict) -> int:
    return params["recipe"]["batch_size"]


def _own(similar: list[Record], norm: str) -> list[Record]:
    """The records of `norm`, if there are some: on the resnet, GroupNorm's and LayerNorm's
    epochs take markedly longer than BatchNorm's."""
    return [r for r in similar if r.params["norm"] == norm] or similar


def _per_epoch(chosen: list[Record]) -> float:
    return sum(r.seconds / r.params["recipe"]["epochs"] for r in chosen) / len(chosen)


def _aside(count: int) -> str:
    return f"; {count} record{'s' * (count != 1)} of a crowded CPU set aside" if count else ""


def price(params: dict, known: list[Record], host: str) -> Price | None:
    """What a run should take on `host`, from the records made there (a GPU and a CPU take very
    different times) and not on a crowded CPU, unless all were; None if none prices it. In this
    order:

    - records of similar runs (same data, amount and model) at its batch size: their mean
      seconds per epoch × its epochs;
    - else the step time measured at other batch sizes (steptime.py: records of the same data
      and model, any amount) × its steps;
    - else, with similar records at one other batch size only (no step time to fit), the
      nearest smaller batch's epoch (more steps: an upper bound), or with only larger ones the
      nearest one's epoch × the ratio of steps (a step of a smaller batch does less work:
      loosely, an upper bound too)."""
    batch, epochs = _batch(params), params["recipe"]["epochs"]
    mine = [r for r in known if r.host == host]
    alike = [r for r in mine if steptime.data_and_net(r.params) == steptime.data_and_net(params)]
    clear = crowding.uncrowded(alike, mine) or alike
    aside = _aside(len(alike) - len(clear))
    here = [r for r in clear if _kind(r.params) == _kind(params)]
    same = _own([r for r in here if _batch(r.params) == batch], params["norm"])
    if same:
        count = f"{len(same)} record{'s' * (len(same) != 1)}"
        return Price(_per_epoch(same) * epochs, f"from {count}{aside}")
    step = steptime.fit(params, clear, host)
    if step is not None:
        seconds = step.at(batch)
        total = seconds * steps_per_epoch(params) * epochs
        return Price(total, f"from step time, {seconds * 1000:.1f} ms a step{aside}")
    if not here:
        return None
    sizes = [_batch(r.params) for r in here]
    nearest = max((b for b in sizes if b <= batch), default=min(sizes))
    similar = _own([r for r in here if _batch(r.params) == nearest], params["norm"])
    steps = max(nearest / batch, 1.0)  # > 1 only when priced from a larger batch
    how = f"from batch {nearest}'s epochs" + (f" × {steps:g} steps" if steps > 1 else "") + aside
    return Price(_per_epoch(similar) * steps * epochs, how)


def estimate(params: dict, known: list[Record], host: str) -> float | None:
    """Seconds a run should take on `host` (see `price`); None if nothing prices it."""
    found = price(params, known, host)
    return None if found is None else found.seconds


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min"


def eta(
    runs: list[PlannedRun],
    known: list[Record],
    jobs: int,
    host: str,
    running: dict[str, float] | None = None,
) -> str:
    """'ETA 12 min' for these runs on `host` at `jobs` at a time; for part of them when the
    others have no similar record made there, which it says. `running`: seconds that runs
    under way still need at their own pace (progress files), by label: those replace their
    prices, so the ETA falls as they train rather than only when one lands."""
    if not runs:
        return "nothing left"
    running = running or {}
    prices = (
        running[r.label] if r.label in running else estimate(r.params, known, host) for r in runs
    )
    guesses = [g for g in prices if g is not None]
    missing = len(runs) - len(guesses)
    if not guesses:
        return f"no estimate (none of the {len(runs)} runs has a similar record)"
    time = f"ETA {duration(sum(guesses) / min(jobs, len(guesses)))}"
    if missing:
        return f"{time} for {len(guesses)} of {len(runs)} runs ({missing} have no similar record)"
    return time
