"""Train bn, gn and ln on the CIFAR-10 *proxy* with the default cifar10 recipe; print a table.

The proxy (JPEG copies of CIFAR-10, built by ../shared/datasets/cifar-10-proxy/build.py) is
NOT CIFAR-10: every number this prints is labelled "proxy". Each norm trains in its own
temp copy of the stages and library, in parallel, exactly as `dvc exp run -S
dataset=cifar10-proxy -S norm=<norm>` would (validate → download → train → evaluate).

    python benchmarks/cifar_proxy.py --proxy .scratch/proxy --device cuda    # GPU: the targets
    python benchmarks/cifar_proxy.py --proxy ../shared/datasets/cifar-10-proxy --device cpu \\
        -S data.limit=2000 -S train.epochs=1                                 # CPU: code path only

`--proxy` is a folder holding build.py and cifar10-jpeg-proxy.npz. The params are params.yaml and
recipes.yaml as committed at HEAD (the workspace's may hold the last `dvc exp run -S …`);
`-S key=value` overrides params.yaml's keys (dotted, YAML values) for every norm. `--out DIR`
keeps each run's metrics, plots and log there.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def set_key(params: dict, dotted: str, value: str) -> None:
    *path, last = dotted.split(".")
    for key in path:
        params = params[key]
    params[last] = yaml.safe_load(value)


def workdir(root: Path, norm: str, device: str, overrides: list[str]) -> Path:
    """A minimal repo copy (library, stages, params, recipes) whose params select the proxy and
    `norm`."""
    work = root / norm
    for name in ("normlab", "stages"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    params, recipes = (
        yaml.safe_load(
            subprocess.run(
                ["git", "show", f"HEAD:{name}"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for name in ("params.yaml", "recipes.yaml")
    )
    (work / "recipes.yaml").write_text(yaml.safe_dump(recipes, sort_keys=False))
    params.update(dataset="cifar10-proxy", norm=norm, device=device)
    for item in overrides:
        key, _, value = item.partition("=")
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def run_stages(work: Path, stages: tuple[str, ...], env: dict) -> subprocess.Popen:
    cmd = " && ".join(f"{sys.executable} -m stages.{s}" for s in stages)
    log = open(work / "log.txt", "a")
    return subprocess.Popen(
        cmd, shell=True, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--proxy",
        type=Path,
        default=REPO / ".scratch" / "proxy",
        help="folder with build.py and cifar10-jpeg-proxy.npz",
    )
    ap.add_argument("--norms", nargs="+", default=["bn", "gn", "ln"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, help="copy each run's metrics, plots and log here")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="cifar-proxy-"))
    try:
        mirror = root / "mirror"
        subprocess.run(
            [sys.executable, str(args.proxy / "build.py"), str(mirror / "cifar10-proxy")],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        env = {**os.environ, "NORMLAB_DATA_MIRROR": str(mirror)}
        works = [workdir(root, norm, args.device, args.overrides) for norm in args.norms]
        # Download and unpack once; the other copies share the verified files.
        if run_stages(works[0], ("validate", "download"), env).wait():
            sys.exit((works[0] / "log.txt").read_text())
        for work in works[1:]:
            (work / "data" / "raw").mkdir(parents=True)
            (work / "data" / "raw" / "cifar10-proxy").symlink_to(
                works[0] / "data" / "raw" / "cifar10-proxy"
            )
        start = time.perf_counter()
        procs = [run_stages(work, ("validate", "train", "evaluate"), env) for work in works]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        print(
            "CIFAR-10 PROXY (JPEG copies; NOT CIFAR-10 accuracy); "
            f"overrides: {args.overrides or 'none'}; "
            f"runs in parallel: {len(works)}, {wall:.0f}s wall in all"
        )
        print(
            f"{'norm':6} {'params':>7} {'proxy final acc':>16} {'proxy best acc':>15} "
            f"{'train s':>8}  device"
        )
        for norm, work, code in zip(args.norms, works, codes, strict=True):
            if code:
                print(f"{norm:6} FAILED (exit {code}):\n{(work / 'log.txt').read_text()[-3000:]}")
                continue
            ev = json.loads((work / "metrics" / "eval.json").read_text())
            run = json.loads((work / "metrics" / "run.json").read_text())
            print(
                f"{norm:6} {ev['params']:7d} {ev['final']['acc']:15.2f}% "
                f"{ev['best']['acc']:14.2f}% "
                f"{run['seconds']:8.1f}  {run['device']}  [{run['data']}]"
            )
            if args.out:
                dest = args.out / norm
                for name in ("metrics", "plots"):
                    shutil.copytree(work / name, dest / name, dirs_exist_ok=True)
                shutil.copy(work / "log.txt", dest / "log.txt")
        sys.exit(max(codes))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
