"""Studies: many variants × seeds, run as ordinary DVC experiments, each run at most once.

A study (studies/*.yaml) names variants — sets of `dvc exp run -S` overrides — and the seeds
to repeat them with. `run` queues one DVC experiment per variant × seed that has no finished
experiment yet and runs the queue, so a study can be interrupted and resumed, and
`dvc exp show`, `dvc metrics diff` and `dvc plots diff` read every run as usual.

A run counts as finished when some experiment (on any commit) trained exactly the same
resolved params (model/params.json), ignoring `device` and `engine.*`, which change where and
how fast a run goes (and, through bf16 vs float32, its last digits), not which experiment it is. So a study re-run elsewhere, or another study that
contains the same variant (bn at batch 128 is in both default studies), reuses the result.

Usage: python -m normlab.study run|plan [--file F] [--study S ...] [--profile P] [--epochs N]
       [--set key=value ...] [--jobs J]
"""

import argparse
import copy
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from normlab import config
from normlab.errors import NormlabError, run_stage

DEFAULT_FILE = Path("studies/default.yaml")
# Experiments live under refs/exps/<2 hex>/<38 hex: baseline commit>/<name>; other refs
# there (the queue's stash, executors) are DVC's bookkeeping.
EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/([^/]+)$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+_-]*$")  # a subset of git's ref-name rules DVC accepts
TAG = "normlab study"  # first words of every study experiment's commit message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Study(_Strict):
    """One study as written in the YAML file; `set` and variant values are params overrides."""

    description: str = ""
    epochs: int = Field(ge=1)
    seeds: list[int] = Field(min_length=1)
    set: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = Field(min_length=1)


class Profile(_Strict):
    """A way to shrink any study: fewer variants, other seeds, fewer epochs, extra overrides."""

    variants: int | None = Field(default=None, ge=1)
    seeds: list[int] | None = None
    epochs: int | None = Field(default=None, ge=1)
    set: dict[str, Any] = {}


class StudyFile(_Strict):
    profiles: dict[str, Profile] = {}
    studies: dict[str, Study] = Field(min_length=1)


@dataclass(frozen=True)
class Run:
    """One planned experiment: a variant of a study with one seed."""

    study: str
    variant: str
    seed: int
    overrides: dict[str, Any]  # dotted params key → value, applied in order
    name: str  # the DVC experiment name
    profile: str | None = None

    def set_args(self) -> list[str]:
        """`-S key=value` arguments for `dvc exp run` (values in YAML/JSON syntax)."""
        args = []
        for key, value in self.overrides.items():
            args += ["-S", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        return args


@dataclass
class Plan:
    """The runs of the chosen studies, and the options that produced them (for the report)."""

    runs: list[Run]
    studies: dict[str, Study]
    profile: str | None
    argv: list[str] = field(default_factory=list)


def load_file(path: Path = DEFAULT_FILE) -> StudyFile:
    """Read and validate a study file; any problem is one line naming the file and key."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: study file not found") from None
    except yaml.YAMLError as exc:
        raise NormlabError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    try:
        parsed = StudyFile.model_validate(raw)
    except ValidationError as exc:
        # an unknown key explains the "missing" one that usually comes with it (a typo)
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise NormlabError(f"{path}: unknown key '{loc}' (a typo?)") from None
        raise NormlabError(f"{path}: {loc}: {err['msg']}") from None
    for name, study in parsed.studies.items():
        for label in (name, *study.variants):
            if not NAME.match(label):
                raise NormlabError(f"{path}: study or variant name {label!r}: use letters, digits, '+', '-', '_' "
                                   "(it becomes part of a DVC experiment name)")
    return parsed


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`key=value` strings (as `-S` takes them) → overrides, values parsed as YAML."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NormlabError(f"--set {item!r}: expected key=value, e.g. --set device=cuda")
        overrides[key] = yaml.safe_load(value)
    return overrides


def plan(spec: StudyFile, names: list[str] | None = None, profile: str | None = None, epochs: int | None = None,
         sets: dict[str, Any] | None = None) -> Plan:
    """Every run of the named studies (all by default), after the profile and the overrides."""
    names = names or list(spec.studies)
    unknown = [n for n in names if n not in spec.studies]
    if unknown:
        raise NormlabError(f"study {unknown[0]!r}: not defined (defined: {', '.join(spec.studies)})")
    if profile is not None and profile not in spec.profiles:
        raise NormlabError(f"profile {profile!r}: not defined (defined: {', '.join(spec.profiles) or 'none'})")
    shrink = spec.profiles[profile] if profile else Profile()
    runs, studies = [], {}
    for name in names:
        study = spec.studies[name]
        variants = dict(list(study.variants.items())[:shrink.variants])
        study = study.model_copy(update={
            "variants": variants,
            "seeds": shrink.seeds or study.seeds,
            "epochs": epochs or shrink.epochs or study.epochs,
            "set": {**study.set, **shrink.set, **(sets or {})},
        })
        studies[name] = study
        prefix = f"{name}-{profile}" if profile else name
        for variant, params in variants.items():
            for seed in study.seeds:
                overrides = {**study.set, "train.epochs": study.epochs, **params, "seed": seed}
                if sets:  # the command line has the last word, even over a variant
                    overrides.update(sets)
                runs.append(Run(name, variant, seed, overrides, f"{prefix}-{variant}-s{seed}", profile))
    return Plan(runs, studies, profile)


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """params.yaml mapping with dotted-key overrides applied, as `dvc exp run -S` would."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise NormlabError(f"override {key}={value!r}: '{part}' is not a section of params.yaml")
        node[leaf] = value
    return out


# Resolved params that say where and how fast a run goes, not which experiment it is (amp's
# bf16 vs float32 moves only the last digits): runs differing only in these are the same run.
PLACE_AND_SPEED = ("device", "engine")


# Recipe keys added after experiments had been run, with the value that computes what those runs
# computed: their model/params.json lacks the key, and without this every older run would look
# unfinished (`make study` would retrain it, `make report` would not find it).
RECIPE_ADDED = {"tta": False}


def science(resolved: dict) -> str:
    """What a run computes: resolved params without device and speed knobs, as a stable key."""
    kept = {k: v for k, v in resolved.items() if k not in PLACE_AND_SPEED}
    kept["recipe"] = {**RECIPE_ADDED, **kept["recipe"]}
    return json.dumps(kept, sort_keys=True)


def resolve(raw: dict, run: Run) -> dict:
    """The resolved params (as the validate stage writes model/params.json) of a planned run."""
    try:
        return config.parse(apply_overrides(raw, run.overrides)).model_dump()
    except NormlabError as err:
        raise NormlabError(f"study {run.study}, variant {run.variant}: {err}") from None


def git(*args: str, cwd: Path | None = None, text: bool = True) -> Any:
    """stdout of a git command (bytes when text=False); failures raise NormlabError."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text)
    if proc.returncode != 0:
        err = proc.stderr if text else proc.stderr.decode(errors="replace")
        raise NormlabError(f"git {' '.join(args)}: {err.strip().splitlines()[-1] if err.strip() else 'failed'}")
    return proc.stdout


@dataclass(frozen=True)
class Experiment:
    """A finished DVC experiment, as git holds it."""

    sha: str
    name: str
    baseline: str
    time: int  # commit time, unix seconds


def experiments(cwd: Path | None = None) -> list[Experiment]:
    """Every finished experiment in this repository (any baseline commit), oldest first."""
    out = git("for-each-ref", "--format=%(objectname) %(committerdate:unix) %(refname)", "refs/exps", cwd=cwd)
    found = []
    for line in out.splitlines():
        sha, when, ref = line.split(" ", 2)
        match = EXP_REF.match(ref)
        if match:
            found.append(Experiment(sha, match.group(3), match.group(1) + match.group(2), int(when)))
    return sorted(found, key=lambda e: e.time)


def show(sha: str, path: str, cwd: Path | None = None) -> bytes | None:
    """A file's bytes as a commit holds it, or None where that commit does not have it."""
    proc = subprocess.run(["git", "show", f"{sha}:{path}"], cwd=cwd, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def read_json(sha: str, path: str, cwd: Path | None = None) -> Any | None:
    """A JSON file from a commit, or None where that commit does not have it."""
    raw = show(sha, path, cwd)
    return None if raw is None else json.loads(raw)


def finished(cwd: Path | None = None) -> dict[str, Experiment]:
    """science key → newest finished experiment with those params."""
    done = {}
    for exp in experiments(cwd):
        resolved = read_json(exp.sha, "model/params.json", cwd)
        if resolved is not None:
            done[science(resolved)] = exp
    return done


def _dvc_env() -> dict[str, str]:
    """Environment for DVC: this interpreter's bin first, so queued stages find `python`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc(*args: str) -> int:
    """Run `dvc` with this interpreter (output straight to the terminal); return its exit code."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], env=_dvc_env()).returncode


def queue_states() -> dict[str, str]:
    """name → 'queued' | 'running' | 'failed' for the named entries of DVC's queue."""
    from dvc.repo import Repo

    with Repo() as repo:
        queue = repo.experiments.celery_queue
        states = {r.entry.name: "failed" for r in queue.iter_failed() if r.entry.name}
        states.update({e.name: "queued" for e in queue.iter_queued() if e.name})
        states.update({e.name: "running" for e in queue.iter_active() if e.name})
    return states


def queued_names() -> set[str]:
    """Names of experiments waiting or running in DVC's queue (not to be queued twice)."""
    return {name for name, state in queue_states().items() if state != "failed"}


def follow(names: set[str], poll_s: float = 5.0) -> None:
    """Print each run's start and end until none of `names` is queued or running.

    Polling the queue (rather than `dvc exp run --run-all`, which holds the repository lock)
    also picks up runs that workers left over from an interrupted `study run` still execute.
    """
    seen = {name: "queued" for name in names}
    finished_count = 0
    while True:
        states = {n: s for n, s in queue_states().items() if n in names}
        for name in sorted(set(seen) | set(states)):
            state = states.get(name, "finished")
            if seen.get(name) == state:
                continue
            seen[name] = state
            finished_count += state == "finished"
            hint = f"  (output: dvc queue logs {name})" if state in ("running", "failed") else ""
            print(f"[{finished_count}/{len(names)} finished] {state:8s} {name}{hint}", flush=True)
        if not any(s in ("queued", "running") for s in states.values()):
            return
        time.sleep(poll_s)


def machine() -> str:
    """Where this runs: accelerator, CPU and torch build, for the experiments' commit messages."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = models[0] if models else cpu
    gpu = f"{torch.cuda.get_device_name(0)}, " if torch.cuda.is_available() else ""
    return f"{gpu}{cpu} ({os.cpu_count()} CPUs), torch {torch.__version__}, {platform.platform()}"


def message(run: Run, command: str, host: str) -> str:
    """The experiment's commit message: what it is, the command that made it, and where."""
    profile = f" profile {run.profile}" if run.profile else ""
    return f"{TAG} {run.study} variant {run.variant} seed {run.seed}{profile}\n\ncommand: {command}\nhost: {host}\n"


def in_queue(run: Run, waiting: set[str]) -> str | None:
    """The queued name of this run: its own, or with the -2, -3… that `unique_name` added."""
    pattern = re.compile(rf"{re.escape(run.name)}(-\d+)?")
    return next((name for name in sorted(waiting) if pattern.fullmatch(name)), None)


def todo(runs: list[Run], raw: dict, done: dict[str, Experiment], waiting: set[str]) -> list[Run]:
    """The runs that have neither a finished experiment nor an entry in the queue."""
    return [r for r in runs if science(resolve(raw, r)) not in done and in_queue(r, waiting) is None]


def unique_name(run: Run, taken: set[str]) -> Run:
    """DVC names must be unique per baseline commit: add -2, -3… if a different run holds it."""
    name, n = run.name, 1
    while name in taken:
        n += 1
        name = f"{run.name}-{n}"
    taken.add(name)
    return Run(run.study, run.variant, run.seed, run.overrides, name, run.profile)


def run_study(the_plan: Plan, jobs: int) -> int:
    """Queue every unfinished run, run the queue, and say what is done; exit code 0 if all are."""
    raw = yaml.safe_load(Path("params.yaml").read_text())
    for r in the_plan.runs:  # every run must validate before anything is queued
        resolve(raw, r)
    done, waiting = finished(), queued_names()
    pending = todo(the_plan.runs, raw, done, waiting)
    total = len(the_plan.runs)
    print(f"{total} runs planned: {total - len(pending)} finished or queued already, {len(pending)} to queue")
    head = git("rev-parse", "HEAD").strip()
    taken = {e.name for e in experiments() if e.baseline == head} | waiting
    command = " ".join(["python -m normlab.study", *map(shlex.quote, the_plan.argv)])
    host = machine()
    names = {name for r in the_plan.runs if (name := in_queue(r, waiting))}
    for r in pending:
        r = unique_name(r, taken)
        code = dvc("exp", "run", "--queue", "--quiet", "-n", r.name, "-m", message(r, command, host), *r.set_args())
        if code != 0:
            raise NormlabError(f"dvc exp run --queue failed for {r.name} (exit {code})")
        names.add(r.name)
        print(f"queued {r.name}: {' '.join(f'{k}={v}' for k, v in r.overrides.items())}")
    if names:
        print(f"running {len(names)} experiments, {jobs} at a time; see also `dvc queue status`, `dvc exp show`")
        dvc("queue", "start", "--jobs", str(jobs))
        follow(names)
    done = finished()
    missing = [r.name for r in the_plan.runs if science(resolve(raw, r)) not in done]
    print(f"{total - len(missing)}/{total} runs finished" + (f"; missing: {', '.join(missing)} "
          "(see `dvc queue status` and `dvc queue logs <name>`; rerun to retry)" if missing else ""))
    return 1 if missing else 0


def show_plan(the_plan: Plan) -> None:
    raw = yaml.safe_load(Path("params.yaml").read_text())
    done = finished()
    for r in the_plan.runs:
        exp = done.get(science(resolve(raw, r)))
        state = f"done ({exp.name} {exp.sha[:7]})" if exp else "to run"
        print(f"{r.name:28s} {state:28s} {' '.join(f'{k}={v}' for k, v in r.overrides.items())}")


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with the report: the same options give the same plan."""
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="study file (default: %(default)s)")
    parser.add_argument("--study", action="append", help="study name, repeatable (default: every study in the file)")
    parser.add_argument("--profile", help="shrink the studies with a profile from the file, e.g. tiny")
    parser.add_argument("--epochs", type=int, help="train.epochs of every run, instead of the study's `epochs`")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override for every run, e.g. --set device=cuda (repeatable)")


def plan_from_args(args: argparse.Namespace, argv: list[str]) -> Plan:
    the_plan = plan(load_file(args.file), args.study, args.profile, args.epochs, parse_sets(args.set))
    the_plan.argv = argv
    return the_plan


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m normlab.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "plan"], help="run: queue and run what is missing; plan: list runs")
    add_plan_arguments(parser)
    parser.add_argument("--jobs", "-j", type=int, default=1, help="experiments run at once (default: %(default)s)")
    args = parser.parse_args(argv)
    the_plan = plan_from_args(args, argv)
    if args.command == "plan":
        show_plan(the_plan)
    else:
        sys.exit(run_study(the_plan, args.jobs))


if __name__ == "__main__":
    run_stage(main)
