"""Version 1 of the claims (studies/claims.yaml) is pinned to seeds 0–2.

Its tests were written for three seeds, and those seeds became version 2's pilot: the fresh
seeds added for version 2's confirmation (studies/claims-v2.yaml) must not move a v1 verdict as
they land, or v1 would quietly become a test on a different, growing sample. So v1 is judged,
and the tables beside it are drawn, on these seeds only.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from normlab.analysis.claims.lines import seed_span

V1_SEEDS = (0, 1, 2)


def restrict(view: Any, seeds: Sequence[int] = V1_SEEDS) -> Any:
    """The study as if only `seeds` were planned: its runs and its missing runs of those seeds."""
    keep = set(seeds)
    return dataclasses.replace(
        view,
        runs=tuple(r for r in view.runs if r.seed in keep),
        missing=tuple((v, s) for v, s in view.missing if s in keep),
    )


def shown(seeds: Sequence[int]) -> str:
    """'seeds 0–2' for a table's caption or cell: which runs a number is over."""
    return f"seed{'s' if len(set(seeds)) != 1 else ''} {seed_span(seeds)}"
