"""The options that choose a plan (--file, --study, --profile, --epochs, --set), shared by the
study and report commands, so that both name the same runs.
"""

import argparse
import shlex
from pathlib import Path

from normlab.analysis.study import overrides, plan
from normlab.analysis.study.plan import Plan


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose the plan; the report takes the same, so they name the same runs."""
    parser.add_argument(
        "--file", type=Path, default=plan.DEFAULT_FILE, help="study file (default: %(default)s)"
    )
    parser.add_argument(
        "--study", action="append", help="study name, repeatable (default: every study in the file)"
    )
    parser.add_argument(
        "--profile", help="shrink the studies with a profile of the file, e.g. tiny"
    )
    parser.add_argument(
        "--epochs", type=int, help="train.epochs of every run, instead of the study's `epochs`"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override for every run, e.g. --set device=cuda (repeatable)",
    )


def plan_from_args(args: argparse.Namespace) -> Plan:
    """The plan these options describe, from HEAD's params.yaml and recipes.yaml."""
    return plan.plan(
        plan.load_file(args.file),
        overrides.base_params(),
        args.study,
        args.profile,
        args.epochs,
        overrides.parse_sets(args.set),
        plan.results_dir(args.file, args.profile),
    )


def file_options(args: argparse.Namespace) -> str:
    """--file and --profile as given, for a command that names the same study file (the
    report's hint to `make study`): "" or ending in a space."""
    picks = [] if args.file == plan.DEFAULT_FILE else ["--file", str(args.file)]
    picks += ["--profile", args.profile] if args.profile else []
    return "".join(f"{shlex.quote(p)} " for p in picks)
