"""`make plan`'s last lines: each registered test (studies/claims-v2.yaml, then -v3.yaml) on the
plan's studies, with its registered n and how many of its runs have records.

    python -m normlab.analysis.claims.tally [--file F] [--study S] ...   (the plan's options)

Apart from `python -m normlab.analysis.study plan` because the study package comes first in the
import order (docs/code.md) and the claims are judged above it; `make plan` runs both.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from normlab.analysis.claims import registered
from normlab.analysis.claims.lines import seed_span
from normlab.analysis.study import flags, records, store
from normlab.analysis.study.plan import RESULTS, Plan
from normlab.errors import run_stage


def plan_lines(plan: Plan, done: set[str], paths: Sequence[Path] = registered.FILES) -> list[str]:
    """A line per registered test on a study of this plan: its n and its runs done / needed."""
    tests = [t for path in paths if path.exists() for t in registered.load(path).claims]
    found = []
    for t in tests:
        if t.study not in plan.studies:
            continue
        head = f"claim {t.id} ({t.study}, {t.kind}): n = {t.n} per variant registered"
        if not t.run:
            found.append(f"{head}; not run ({t.why_not_run})")
            continue
        mine = [r for r in plan.runs if r.study == t.study and r.variant in t.names]
        have = sum(r.key in done for r in mine if r.seed in t.seeds)
        needed = len(t.names) * len(t.seeds)
        found.append(f"{head}, seeds {seed_span(t.seeds)}: {have}/{needed} runs done")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m normlab.analysis.claims.tally", description=__doc__.split("\n\n")[0]
    )
    flags.add_plan_arguments(parser)
    # The plan's options only; `make plan`'s ARGS may hold run-only ones (--variant, --jobs…).
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    done = set(records.done(store.read_all(RESULTS)))
    for line in plan_lines(flags.plan_from_args(args), done):
        print(line)


if __name__ == "__main__":
    run_stage(main)
