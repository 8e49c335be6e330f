"""Which runs of a plan this command takes: `--variant`, `--seed` and `--shard I/N`.

Shards let N machines that share only git split a study without talking to each other: each
computes the same slices, of equal cost (cost.py), from the same plan and merges its records
through git. Machines that share a filesystem need no shards: leases hand each the next free
run (leases.py).
"""

from normlab.analysis.study import cost
from normlab.analysis.study.plan import PlannedRun
from normlab.errors import NormlabError


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' → (I, N), 1 ≤ I ≤ N; anything else is a one-line error."""
    index, sep, count = text.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index), int(count)
    raise NormlabError(
        f"--shard {text!r}: expected I/N with 1 ≤ I ≤ N, e.g. --shard 2/3 (the 2nd of 3 slices)"
    )


def shard(runs: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    """The index-th (1-based) of `count` disjoint slices of equal cost (cost.shards), computed
    from the whole plan, so every machine gets the same slices whatever records it has."""
    return cost.shards(runs, count)[index - 1]


def pick(
    runs: list[PlannedRun],
    *,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    shard_text: str | None = None,
) -> tuple[list[PlannedRun], str]:
    """The runs these options pick out of the plan's `runs`, and how to say so."""
    picked = runs
    for option, wanted, value in (
        ("--variant", variants, lambda r: r.variant),
        ("--seed", seeds, lambda r: r.seed),
    ):
        if wanted:
            have = sorted({value(r) for r in picked}, key=str)
            unknown = [w for w in wanted if w not in have]
            if unknown:
                allowed = ", ".join(map(str, have))
                raise NormlabError(f"{option} {unknown[0]}: not in the plan (allowed: {allowed})")
            picked = [r for r in picked if value(r) in wanted]
    if shard_text is not None:
        index, count = parse_shard(shard_text)
        picked = shard(picked, index, count)
        return picked, f" (shard {index}/{count}: {len(picked)} of {len(runs)})"
    return picked, f" ({len(picked)} picked)" if len(picked) != len(runs) else ""
