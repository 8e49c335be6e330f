"""Benchmark: packed runs (normlab.packed, issue 17) — images/s per run for K runs as one model.

    python benchmarks/packed.py                              # CPU (or CUDA when present)
    python benchmarks/packed.py --device cuda --steps 200 --ks 1,3,12,24
    python benchmarks/packed.py --device cuda --train 20     # + 3 bn seeds packed, full MNIST

The K runs are the first K of the first norms study (studies/norms-5ep.yaml, variants × seeds in
that order: K = 3 is bn's three seeds, K = 12 bn, gn, ln and in), on MNIST from data/mnist/,
with the batch-128 recipe that file pins: packing takes rotation only, and today's MNIST recipe
adds shifts, which draw from torch's global generator (packing.pack_key says so). For
each K, fit_packed trains one epoch of --steps steps after an untimed warm-up of --warmup steps;
images/s per run is steps × batch / seconds, the pack computing K times as many. Beside them,
the same steps of bench.py's seed-style loop and of normlab's own loop for one run. The
projection of the norms study (24 runs × 20 epochs × 60,000 images) packs its runs K at a time:
⌈24/K⌉ packs × 20 epochs × (60,000 / images/s per run + the pack's scoring of the 10,000 test
images, measured). --train E then trains bn's three seeds packed for E epochs on all of MNIST
and sets their accuracy beside the CPU runs of the same variant; --study E trains the whole
study, --pack runs at a time, timed, each variant's accuracy beside the recorded runs
(results/norms-5ep/runs/). Needs torch and this repo.
"""

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench  # noqa: E402  # the seed-style loop and the committed params

from normlab import config  # noqa: E402
from normlab.data import fetch  # noqa: E402
from normlab.data.readers import Split  # noqa: E402
from normlab.errors import DivergedError, run_stage  # noqa: E402
from normlab.packed import fit as packed  # noqa: E402
from normlab.packed import merge as packing  # noqa: E402
from normlab.train.evaluation import evaluate  # noqa: E402
from normlab.train.prepare import prepare  # noqa: E402

STUDY, STUDY_EPOCHS, STUDY_IMAGES = "norms", 20, 60_000
STUDY_FILE = ROOT / "studies" / "norms-5ep.yaml"  # pins the batch-128 recipe, rotation only
RECORDS = ROOT / "results" / "norms-5ep" / "runs" / STUDY
SMALL_TEST = 256  # test images scored after each timed epoch (scoring is timed apart)


def with_sets(raw: dict, sets: dict) -> dict:
    """`raw` params with dotted-key overrides, as a study's variants give them."""
    raw = copy.deepcopy(raw)
    for dotted, value in sets.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return raw


def study_runs(base: dict) -> list[tuple[str, int, dict]]:
    """The norms study's runs, variant by variant, each over the study's seeds: (variant,
    seed, raw params)."""
    spec = yaml.safe_load(STUDY_FILE.read_text())["studies"][STUDY]
    return [
        (variant, seed, with_sets(base, {**spec.get("set", {}), **sets, "seed": seed}))
        for variant, sets in spec["variants"].items()
        for seed in spec["seeds"]
    ]


def parse(raw: dict) -> config.Params:
    """Params of `raw` with the recipes committed at HEAD."""
    return config.parse(raw, bench.committed("recipes.yaml"))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fit(pack: packing.PreparedPack, runs: list[config.Params], train: Split, test: Split):
    """fit_packed on `train`, scored on `test`: what a study run of these K would do."""
    p = pack.prep
    return packed.fit_packed(
        pack.models,
        train=train,
        test=test,
        batcher=p.batcher,
        recipe=runs[0].recipe,
        l1=[r.l1 for r in runs],
        l2=[r.l2 for r in runs],
        seeds=[r.seed for r in runs],
        eval_batch_size=runs[0].engine.eval_batch_size,
        autocast=p.autocast,
    )


def time_pack(raws: list[dict], mnist: Path, steps: int, warmup: int) -> tuple[float, float]:
    """Seconds of one packed epoch of `steps` steps (after `warmup` untimed ones; fit_packed's
    own clock: the steps and scoring SMALL_TEST images), and of scoring all test images."""
    runs = [parse(r) for r in raws]
    pack = packing.prepare_packed(runs, mnist.parent)
    p, batch = pack.prep, runs[0].recipe.batch_size
    small = Split(p.test.images[:SMALL_TEST], p.test.labels[:SMALL_TEST])
    warm = Split(p.train.images[: warmup * batch], p.train.labels[: warmup * batch])
    fit(packing.PreparedPack(p, copy.deepcopy(pack.models)), runs, warm, small)
    train_s = fit(pack, runs, p.train, small)[0].seconds
    generators = [torch.Generator(device=p.device) for _ in runs]
    whole = packing.pack(pack.models, generators, channels_last=p.batcher.channels_last)
    batch_size = runs[0].engine.eval_batch_size
    packing.evaluate_packed(whole, small, p.batcher, batch_size, p.autocast)  # warm
    sync(p.device)
    start = time.perf_counter()
    packing.evaluate_packed(whole, p.test, p.batcher, batch_size, p.autocast)
    sync(p.device)
    return train_s, time.perf_counter() - start


def time_alone(raw: dict, mnist: Path, steps: int, workers: int) -> tuple[float, float]:
    """Seconds of `steps` steps of one run: bench.py's seed-style loop, normlab's loop."""
    params = parse(raw)
    exp = prepare(params, mnist.parent)
    r, device = params.recipe, exp.device
    mean, std = exp.batcher.mean.item(), exp.batcher.std.item()
    images, labels = exp.train.images.cpu(), exp.train.labels.cpu()
    loader = DataLoader(
        bench.SeedStyleMnist(images, labels, r.rotate, mean, std),
        batch_size=r.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    batches, ref = bench.forever(loader), bench.seed_style(exp.model)
    times = []
    for _ in range(2):  # the first is the warm-up
        model, opt, sched = bench.fresh(ref, params, params.seed, steps)
        times.append(bench.reference_train(model, opt, sched, batches, steps, device))
    solo = []
    for _ in range(2):
        opt, sched = bench.fresh(exp.model, params, params.seed, steps)[1:]
        solo.append(bench.normlab_train(exp, params, exp.model, opt, sched, params.seed))
    return times[-1], solo[-1]


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def report(rows: list[tuple[str, int, float, float | None]], reference: float, batch: int):
    """The table: per arm its runs, images/s per run and in all, the ratio to the seed-style
    loop per run, the pack's scoring time; then the projected norms study per K."""
    print(
        f"\n{'':30s}{'runs':>5s}{'img/s per run':>15s}{'img/s all':>12s}"
        f"{'vs seed-style':>15s}{'eval 10k, s':>13s}"
    )
    for name, runs, rate, eval_s in rows:
        ev = f"{eval_s:13.2f}" if eval_s is not None else ""
        print(f"{name:30s}{runs:5d}{rate:15,.0f}{rate * runs:12,.0f}{rate / reference:14.2f}×{ev}")
    n_runs = len(study_runs({}))  # the study's size: its variants × seeds
    print(
        f"\nprojected {STUDY} study ({n_runs} runs × {STUDY_EPOCHS} epochs × "
        f"{STUDY_IMAGES:,} images), runs packed K at a time (batch {batch}):"
    )
    best = None
    for _, runs, rate, eval_s in rows:
        if eval_s is None:
            continue
        packs = math.ceil(n_runs / runs)
        total = packs * STUDY_EPOCHS * (STUDY_IMAGES / rate + eval_s)
        print(
            f"  K={runs:<3d} {packs:3d} packs × {STUDY_EPOCHS} epochs × "
            f"({STUDY_IMAGES:,} / {rate:,.0f} + {eval_s:.2f}) s = {hours(total)}"
        )
        best = min(best or (total, runs), (total, runs))
    print(f"  best: K={best[1]}, {hours(best[0])} of training and scoring")


def train_check(base: dict, mnist: Path, epochs: int) -> None:
    """bn's three seeds packed for `epochs` on all of MNIST: training seconds, accuracy, the
    pack's scores against the unpacked models', and the CPU runs of the same variant."""
    raws = [with_sets(base, {"norm": "bn", "seed": s, "train.epochs": epochs}) for s in range(3)]
    runs = [parse(r) for r in raws]
    pack = packing.prepare_packed(runs, mnist.parent)
    p = pack.prep
    results = fit(pack, runs, p.train, p.test)
    accs = [f"{r.history[-1]['test/acc']:.2f}" for r in results]
    print(
        f"\n{epochs}-epoch bn, seeds 0-2 packed (K=3) on {p.device} ({p.precision}): "
        f"{results[0].seconds:.1f} s of training and scoring, final test acc {', '.join(accs)} %"
    )
    generators = [torch.Generator(device=p.device) for _ in runs]
    whole = packing.pack(pack.models, generators, channels_last=p.batcher.channels_last)
    together = packing.evaluate_packed(whole, p.test, p.batcher, 2000, p.autocast)
    alone = [evaluate(m, p.test, p.batcher, 2000, p.autocast) for m in pack.models]
    same = [
        round(100.0 * (a.predictions == b.predictions).float().mean().item(), 2)
        for a, b in zip(together, alone, strict=True)
    ]
    print(f"  predictions of the pack = of each unpacked model alone: {same} % of test images")
    print(
        "  bn trained alone on a CPU: 20 epochs, seed 0: see metrics/eval.json; 5 epochs: "
        f"{', '.join(recorded(5).get('bn', [])) or 'no record'} ({RECORDS.relative_to(ROOT)}/bn/)"
    )


def recorded(epochs: int) -> dict[str, list[str]]:
    """The final accuracies in the study's run records (RECORDS/<variant>/s*.json)
    of `epochs` epochs, per variant, each with the device it ran on. Read as plain JSON: the
    GPU machine need not have the analysis package's dependencies."""
    out: dict[str, list[str]] = {}
    for path in sorted(RECORDS.glob("*/s*.json")):
        record = json.loads(path.read_text())
        if record["params"]["recipe"]["epochs"] == epochs:
            out.setdefault(record["variant"], []).append(
                f"{record['final']['acc']:.2f} {record['device']}"
            )
    return out


def study_check(base: dict, mnist: Path, epochs: int, k: int) -> None:
    """The whole norms study at `epochs`, packed `k` runs at a time: its wall time, and each
    variant's final accuracies beside the recorded runs of the same study and epochs."""
    planned = [(v, s, with_sets(r, {"train.epochs": epochs})) for v, s, r in study_runs(base)]
    start, accs = time.perf_counter(), {}
    for i in range(0, len(planned), k):
        group = planned[i : i + k]
        runs = [parse(r) for _, _, r in group]
        pack = packing.prepare_packed(runs, mnist.parent)
        results = fit(pack, runs, pack.prep.train, pack.prep.test)
        for (variant, _, _), result in zip(group, results, strict=True):
            acc = (
                "diverged" if isinstance(result, DivergedError) else result.history[-1]["test/acc"]
            )
            accs.setdefault(variant, []).append(acc)
    wall = time.perf_counter() - start
    print(
        f"\n{STUDY} study, {len(planned)} runs × {epochs} epochs packed {k} at a time: "
        f"{wall:.1f} s wall (data loading included); × {STUDY_EPOCHS / epochs:g} for "
        f"{STUDY_EPOCHS} epochs ≈ {hours(wall * STUDY_EPOCHS / epochs)}"
    )
    records = recorded(epochs)
    print(f"  {'variant':10s} {'packed, final test acc %':28s} recorded runs ({epochs} epochs)")
    for variant, values in accs.items():
        mine = ", ".join(v if isinstance(v, str) else f"{v:.2f}" for v in values)
        print(f"  {variant:10s} {mine:28s} {', '.join(records.get(variant, ['none']))}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (auto: cuda > cpu)")
    ap.add_argument("--steps", type=int, default=30, help="timed training steps per arm")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each pack")
    ap.add_argument("--ks", default="1,3,12", help="pack sizes K, comma-separated ('': none)")
    ap.add_argument("--workers", type=int, default=None, help="seed-style DataLoader workers")
    ap.add_argument("--train", type=int, default=0, help="also train 3 bn seeds packed, epochs")
    ap.add_argument("--study", type=int, default=0, help="also train the norms study, epochs")
    ap.add_argument("--pack", type=int, default=12, help="--study: runs per pack")
    ap.add_argument("--limit", type=int, default=0, help="--train, --study: images (0: all)")
    args = ap.parse_args()
    os.chdir(ROOT)  # fetch takes data/mnist/ from here, as the download stage does
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    base = {**bench.committed("params.yaml"), "dataset": "mnist", "device": args.device}
    checks = with_sets(base, {"data.limit": args.limit})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = args.workers if args.workers is not None else (1 if cores <= 2 else min(4, cores - 1))
    with tempfile.TemporaryDirectory(prefix="normlab-packed-") as tmp:
        mnist = Path(tmp) / "mnist"
        fetch.download("mnist", mnist)
        benchmark(args, base, mnist, workers)
        if args.train:
            train_check(checks, mnist, args.train)
        if args.study:
            study_check(checks, mnist, args.study, args.pack)


def benchmark(args: argparse.Namespace, base: dict, mnist: Path, workers: int) -> None:
    """The table of images/s and the projected study, for the pack sizes of --ks (none: skip)."""
    ks = [int(k) for k in args.ks.split(",") if k]
    if not ks:
        return
    raws = [r for _, _, r in study_runs(base)]
    batch = parse(raws[0]).recipe.batch_size
    sized = [with_sets(r, {"data.limit": args.steps * batch, "train.epochs": 1}) for r in raws]
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else bench.device_name(device)
    )
    print(
        f"packed runs on {device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}; "
        f"{args.steps} timed steps of batch {batch}; engine "
        f"{parse(raws[0]).engine.model_dump()}"
    )
    ref_s, solo_s = time_alone(sized[0], mnist, args.steps, workers)
    images = args.steps * batch
    rows = [("seed-style loop (bench.py)", 1, images / ref_s, None)]
    rows.append(("normlab loop, one run", 1, images / solo_s, None))
    for k in ks:
        if k > len(sized):
            raise SystemExit(f"--ks: K={k} is more than the study's {len(sized)} runs")
        train_s, eval_s = time_pack(sized[:k], mnist, args.steps, args.warmup)
        rows.append((f"packed K={k}", k, images / train_s, eval_s))
        print(
            f"  K={k}: {train_s:.2f} s for {args.steps} steps, scoring {eval_s:.2f} s", flush=True
        )
    report(rows, images / ref_s, batch)


if __name__ == "__main__":
    run_stage(main)
