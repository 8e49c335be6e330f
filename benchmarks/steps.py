"""Benchmark: milliseconds per training step at small batches, this checkout against another.

    python benchmarks/steps.py                              # bn and gn at batch 2, 4, 8
    python benchmarks/steps.py --against ../normlab-main    # the same, another checkout beside
    python benchmarks/steps.py --norms bn --batches 2,64 --rounds 8 --steps 400

Per-step host overhead rules a step of the 8.7k-parameter MNIST net at batch 2-8 on a CPU
(issue 30), which bench.py's images/s at the recipe's batch hides. Each measurement is a child
process that imports normlab from one checkout (`--against` names the other: a git worktree of
the commit to compare with), prepares the MNIST recipe from this checkout's committed
params.yaml and recipes.yaml at the given norm and batch (`engine.threads` 1 unless --threads
says otherwise), runs one untimed epoch of --steps steps, then times --repeats epochs of
`loop.train_epoch` (the training step `dvc repro` runs, bookkeeping included). The checkouts
alternate, config by config, for --rounds rounds, and the table shows medians: a shared
machine's speed drifts by tens of percent from minute to minute. Needs torch and this repo.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(args: argparse.Namespace) -> None:
    """Time train_epoch with the code of checkout `args.tree`; print ms per step as JSON."""
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import torch
    import yaml

    from normlab import config
    from normlab.train.loop import train_epoch
    from normlab.train.optim import make_optimizer, recipe_scheduler
    from normlab.train.prepare import prepare

    raw, recipes = (yaml.safe_load(committed(name)) for name in ("params.yaml", "recipes.yaml"))
    raw |= {"dataset": "mnist", "norm": args.norm, "device": "cpu"}
    raw["data"] = raw["data"] | {"limit": args.batch * args.steps, "val": 0}
    raw["engine"] = raw["engine"] | {"threads": args.threads}
    raw["train"] = raw["train"] | {"batch_size": args.batch, "epochs": args.repeats + 1}
    params = config.parse(raw, recipes)
    prep = prepare(params, root=Path(args.data))
    r = params.recipe
    opt = make_optimizer(
        prep.model, r.lr, r.momentum, params.l2, nesterov=r.nesterov, scope=r.l2_scope
    )
    sched = recipe_scheduler(opt, r, args.steps)
    times = []
    for epoch in range(args.repeats + 1):  # the first is the warm-up
        start = time.perf_counter()
        train_epoch(
            prep.model,
            opt,
            sched,
            prep.train,
            prep.batcher,
            batch_size=args.batch,
            l1=params.l1,
            autocast=prep.autocast,
            epoch=epoch + 1,
            progress=lambda n: None,
            l1_form=r.l1_form,
            l1_scope=r.l1_scope,
        )
        times.append((time.perf_counter() - start) / args.steps * 1000)
    print(json.dumps({"ms": times[1:], "precision": prep.precision, "torch": torch.__version__}))


def committed(name: str) -> str:
    """params.yaml or recipes.yaml as committed at HEAD (not the workspace's last experiment)."""
    shown = subprocess.run(
        ["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return shown.stdout


def measure(args: argparse.Namespace, tree: Path, norm: str, batch: int, data: Path) -> dict:
    """One child process: ms per step of `repeats` epochs for one checkout, norm and batch."""
    cmd = [sys.executable, __file__, "--child", "--tree", str(tree), "--norm", norm]
    cmd += ["--batch", str(batch), "--data", str(data), "--steps", str(args.steps)]
    cmd += ["--repeats", str(args.repeats), "--threads", str(args.threads)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{tree}: the timing child failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", help="another checkout of normlab to time beside this one")
    ap.add_argument("--norms", default="bn,gn")
    ap.add_argument("--batches", default="2,4,8")
    ap.add_argument("--steps", type=int, default=300, help="steps per timed epoch")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per child process")
    ap.add_argument("--rounds", type=int, default=4, help="child processes per checkout/config")
    ap.add_argument("--threads", type=int, default=1, help="engine.threads (1: busy machines)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", default=str(ROOT), help=argparse.SUPPRESS)
    ap.add_argument("--norm", default="bn", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT))
    from normlab.data import fetch

    trees = {"this": ROOT} | ({"against": Path(args.against).resolve()} if args.against else {})
    configs = [(n, int(b)) for n in args.norms.split(",") for b in args.batches.split(",")]
    ms: dict[tuple, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="normlab-steps-") as tmp:
        fetch.download("mnist", Path(tmp) / "mnist")  # data/mnist/, md5-verified
        for rnd in range(args.rounds):
            for norm, batch in configs:
                order = list(trees.items())
                for name, tree in order if rnd % 2 == 0 else order[::-1]:
                    got = measure(args, tree, norm, batch, Path(tmp))
                    ms.setdefault((name, norm, batch), []).append(got["ms"])
            print(f"round {rnd + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.1f}")
    report(trees, configs, ms, got, args)


def report(trees: dict, configs: list, ms: dict, last: dict, args: argparse.Namespace) -> None:
    """The medians (and quartiles) per checkout and config; with two checkouts, the median of
    the rounds' ratios: each round's two measurements ran minutes apart, so the ratio of a pair
    drifts less than either."""
    print(
        f"\nms per training step, median [quartiles] of {args.rounds} × {args.repeats} epochs of "
        f"{args.steps} steps; torch {last['torch']}, {last['precision']}, threads "
        f"{args.threads}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    for name, tree in trees.items():
        print(f"  {name}: {tree}")
    for norm, batch in configs:
        cells = []
        for name in trees:
            q = statistics.quantiles([t for run in ms[(name, norm, batch)] for t in run], n=4)
            cells.append(f"{name} {q[1]:6.2f} [{q[0]:.2f}–{q[2]:.2f}]")
        ratio = ""
        if len(trees) == 2:
            this, other = (ms[(n, norm, batch)] for n in trees)
            rounds = zip(this, other, strict=True)
            pairs = [statistics.median(a) / statistics.median(b) for a, b in rounds]
            ratio = f"  this/against {statistics.median(pairs):.2f} (rounds {min(pairs):.2f}–"
            ratio += f"{max(pairs):.2f})"
        print(f"{norm} batch {batch:3d}:  " + "   ".join(cells) + ratio)


if __name__ == "__main__":
    main()
