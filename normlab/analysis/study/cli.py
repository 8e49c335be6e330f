"""Studies from the command line: plan them, run what has no record yet, verify a record.

    python -m normlab.analysis.study run    [plan options] [--jobs N] [--shard I/N] [--commit]
    python -m normlab.analysis.study plan   [plan options] [--jobs N] [--shard I/N]
    python -m normlab.analysis.study verify results/runs/norms/bn/s0.json
    python -m normlab.analysis.study show   results/runs/norms/bn/s0.json
    python -m normlab.analysis.study status [--follow]

Plan options: --file F, --study S (repeatable), --profile P, --epochs N, --set key=value.

`run` skips every planned run whose identity key already has a record anywhere under
results/ and trains the rest, N at a time, one worker process each (normlab.analysis.study.pool),
under leases shared with any other runner of the checkout (leases.py), showing them live
(live.py); an interrupted study rerun with the same command resumes where it stopped.
`--shard I/N` takes the I-th of N disjoint slices of equal cost (cost.py), so N machines can
share a study and merge their records through git. `plan` lists the runs, which are done, and
an estimate of the time the rest take from the seconds of similar records, or of the steps
measured at other batch sizes (estimates.py), each run saying which. `verify` retrains
the run behind one record and says how its numbers compare with it
(normlab.analysis.study.retrain); `show` prints one (show.py); `status` is the live view from
another terminal.
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import get_args

from normlab.analysis.study import estimates, flags, live, pool, records, retrain, show, store
from normlab.analysis.study.leases import EXPIRY_S
from normlab.analysis.study.pick import pick
from normlab.analysis.study.plan import RESULTS, Plan, PlannedRun
from normlab.analysis.study.records import Record
from normlab.errors import NormlabError
from normlab.train.device import host
from normlab.types import Device


def _sliced(the_plan: Plan, args: argparse.Namespace) -> tuple[list[PlannedRun], str]:
    """The runs the options pick, less those of a study marked `not_run` that --study does not
    name (a study left for a GPU stays out of a CPU's `make study`)."""
    runs, note = pick(the_plan.runs, variants=args.variant, seeds=args.seed, shard_text=args.shard)
    for name, spec in the_plan.studies.items():
        if spec.not_run and name not in (args.study or []):
            mine = [r for r in runs if r.study == name]
            runs = [r for r in runs if r.study != name]
            note += (
                f" (less {len(mine)} of {name}, not run: {spec.not_run}; --study {name} runs them)"
            )
    return runs, note


def parse_duration(text: str) -> float:
    """'2h30m', '150m', '90s', '600' (seconds) → seconds; anything else is a one-line error."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text.strip())
    if not text.strip() or not match:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 2h30m, 150m, 90s or 600")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _known() -> list[Record]:
    """Every record under results/, conflicts between them reported (never merged silently)."""
    known = store.read_all(RESULTS)
    for line in records.conflicts(known):
        print(f"warning: {line}", flush=True)
    return known


def _diverged() -> dict[str, records.Diverged]:
    """identity key → divergence record, from under results/: runs done, with no numbers."""
    return records.done(store.read_diverged(RESULTS))


def todo(
    runs: list[PlannedRun], known: list[Record], diverged: dict | None = None
) -> list[PlannedRun]:
    """The runs with no record nor divergence record of the same identity key, each key once
    (a deterministic run that diverged would diverge again)."""
    done = records.done(known)
    seen, left = set(done) | set(diverged or {}), []
    for run in runs:
        if run.key not in seen:
            seen.add(run.key)
            left.append(run)
    return left


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _difference(old: dict, new: dict) -> str:
    """'recipe.epochs 5 → 20' for the science keys in which two params differ."""
    a, b = _flat(json.loads(records.identity(old))), _flat(json.loads(records.identity(new)))
    return ", ".join(
        f"{k} {a.get(k)} → {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    )


def check_room(runs: list[PlannedRun]) -> None:
    """A record of another run where a planned one must go is never overwritten."""
    for run in runs:
        if run.path.exists():
            change = _difference(store.read(run.path).params, run.params)
            raise NormlabError(
                f"{run.path}: holds another run than {run.label} ({change}); "
                "move it or `git rm` it to replace it"
            )


def run(the_plan: Plan, args: argparse.Namespace) -> int:
    """Train what the plan (or the part picked) lacks, and nobody else holds; exit code 0 if
    every run has a record (its own or another runner's)."""
    runs, sliced = _sliced(the_plan, args)
    known = _known()
    left = todo(runs, known, _diverged())
    check_room(left)
    before = _diverged_runs(runs, known)
    here = host()
    print(
        f"{len(the_plan.runs)} runs planned{sliced}: {len(runs) - len(left)} have records, "
        f"{len(left)} to train, {args.jobs} at a time; "
        f"{estimates.eta(left, known, args.jobs, here)}"
        + (f"; {_diverged_text(before)}, not retrained" if before else ""),
        flush=True,
    )
    failed = pool.run_all(
        left,
        known,
        jobs=args.jobs,
        commit=args.commit,
        host=here,
        seconds=args.deadline,
        resume_later=args.resume_later,
        expiry_s=args.lease_expiry,
        done_before=len({r.key for r in runs}) - len(left),
    )
    diverged = _diverged_runs(runs, known)  # `known` now holds the new records too
    done = records.done(known)
    have = sum(r.key in done for r in runs)
    print(
        f"{have}/{len(runs)} runs have records under {the_plan.out / 'runs'}"
        + (f"; {_diverged_text(diverged)}" if diverged else "")
        + (f"; failed: {', '.join(failed)} (rerun to retry)" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


def _diverged_runs(runs: list[PlannedRun], known: list[Record]) -> list[PlannedRun]:
    """The runs with a divergence record and no record."""
    done, diverged = records.done(known), _diverged()
    return [r for r in runs if r.key in diverged and r.key not in done]


def _diverged_text(runs: list[PlannedRun]) -> str:
    labels = ", ".join(r.label for r in runs)
    return f"diverged: {labels} (delete its s<seed>.diverged.json to retry)"


def show_plan(the_plan: Plan, args: argparse.Namespace) -> None:
    runs, sliced = _sliced(the_plan, args)
    jobs = args.jobs
    known = _known()
    done, diverged, first = records.done(known), _diverged(), {}
    here = host()
    width = max((len(r.label) for r in runs), default=0)
    for r in runs:
        found = done.get(r.key)
        if found:
            state = f"done     {found.final.acc:6.2f} %  {found.seconds:7.1f} s  {found.source}"
        elif r.key in diverged:
            state = f"diverged  {diverged[r.key].error}  (delete {diverged[r.key].source} to retry)"
        elif r.key in first:
            state = f"to run   (same run as {first[r.key]})"
        else:
            guess = estimates.price(r.params, known, here)
            said = f"~{estimates.duration(guess.seconds)} ({guess.how})" if guess else "no estimate"
            state = f"to run   {said}"
        first.setdefault(r.key, r.label)
        print(f"{r.label:{width}s}  {state}")
    left = todo(runs, known, diverged)
    eta = f"; {estimates.eta(left, known, jobs, here)} ({jobs} at a time)" if left else ""
    done_count = len(runs) - len(left)
    print(f"{len(the_plan.runs)} runs{sliced}: {done_count} done, {len(left)} to run{eta}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m normlab.analysis.study", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "train every planned run that has no record yet"),
        ("plan", "list the planned runs, which are done, and the time left"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        flags.add_plan_arguments(sub)
        sub.add_argument(
            "--jobs",
            "-j",
            type=int,
            default=1,
            help="runs trained at once, one worker process each (default: 1; "
            "on a small CPU add --set engine.threads=1)",
        )
        sub.add_argument(
            "--shard",
            metavar="I/N",
            help="only the I-th of N disjoint slices of the plan, of equal cost (1-based)",
        )
        sub.add_argument("--variant", action="append", help="only this variant (repeatable)")
        sub.add_argument("--seed", action="append", type=int, help="only this seed (repeatable)")
        if name == "run":
            sub.add_argument(
                "--commit",
                action="store_true",
                help="git-commit each record (only its files) as it lands",
            )
            sub.add_argument(
                "--lease-expiry",
                type=parse_duration,
                default=EXPIRY_S,
                metavar="DURATION",
                help="a run whose lease has had no heartbeat for this long is taken over "
                "(default: 5m; give every runner sharing the checkout the same)",
            )
            sub.add_argument(
                "--deadline",
                type=parse_duration,
                metavar="DURATION",
                help="start only runs that should end within this long, e.g. 2h30m, 150m, "
                "90s (priced from similar records, as the ETA; a run with none starts until "
                "then; a rerun continues): for a session's end or a machine lent for a while",
            )
            sub.add_argument(
                "--resume-later",
                action="store_true",
                help="with --deadline: when no run left should end in time, start one anyway "
                "if an epoch of it should, and stop every run still training at the deadline; "
                "its epochs so far stay in its checkpoint in normlab's cache, and a rerun on a "
                "machine with that cache resumes it (not a lent machine given back)",
            )
    watch = commands.add_parser("status", help="what runs now in this checkout, as make study")
    watch.add_argument("--follow", action="store_true", help="keep it up to date")
    look = commands.add_parser("show", help="a record's numbers and curve; its TSVs for dvc plots")
    look.add_argument("record", type=Path, help="e.g. results/runs/norms/bn/s0.json")
    check = commands.add_parser("verify", help="retrain the run behind a record and compare")
    check.add_argument("record", type=Path, help="e.g. results/runs/norms/bn/s0.json")
    check.add_argument(
        "--device",
        choices=get_args(Device),
        help="train on this device instead of the record's",
    )
    args = parser.parse_args(argv)
    if args.command == "verify":
        sys.exit(retrain.verify(args.record, args.device))
    if args.command == "status":
        return live.status(args.follow, sys.stdout)
    if args.command == "show":
        return show.show(args.record, sys.stdout)
    if args.jobs < 1:
        raise NormlabError(f"--jobs {args.jobs}: must be at least 1")
    if args.command == "run" and args.lease_expiry < 1:  # every lease would look dead at once
        raise NormlabError("--lease-expiry: must be at least 1s (default 5m)")
    if args.command == "run" and args.resume_later and args.deadline is None:
        raise NormlabError("--resume-later: give a --deadline too (it stops runs at it)")
    the_plan = flags.plan_from_args(args)
    if args.command == "plan":
        show_plan(the_plan, args)
    else:
        sys.exit(run(the_plan, args))
