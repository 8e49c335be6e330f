"""Benchmark: normlab's trainer against a seed-style training loop, same model, same steps.

    python benchmarks/bench.py                      # CPU (or CUDA when present), ~2 min on 2 cores
    python benchmarks/bench.py --device cuda --steps 400 --repeats 5
    python benchmarks/bench.py --stage              # also time the real `train` stage (minutes)
    python benchmarks/bench.py --batch-size 2 --threads 1   # a small batch, one thread

It benchmarks MNIST whatever the workspace's params.yaml names (`dvc exp run -S dataset=…`
leaves an experiment's params there): the params are params.yaml as committed at HEAD with
`dataset: mnist`, and the data is data/mnist/, copied md5-verified into a temp folder by
`fetch.download`, as the download stage does. Both arms train a fresh copy of that model (same
norm, seed, batch size, SGD and one-cycle schedule over the same number of steps), after a
warm-up on a throw-away copy; the arms alternate `--repeats` times and the medians are shown,
because a shared machine is noisy. The arms differ only in how the loop is written:

- reference, "seed-style": the way the course write-ups normlab replicates train (see
  docs/performance.md) — a `Dataset` returning one tensor per sample with its
  own random rotation (±rotate°, bilinear, zero fill, as RandomRotation) and normalisation, a
  `DataLoader(shuffle=True, num_workers=…)`, `loss.item()` and the hit count read every step,
  float32, default memory format, torch's `nn.Dropout` (normlab's model draws its CPU dropout
  masks more cheaply, see models.Dropout; same architecture, weights and p otherwise);
- normlab: `prepare.prepare(params)` + `loop.train_epoch`, exactly what `dvc repro` runs
  (`data.limit` = steps × batch size, so one epoch is the timed steps).

Each arm's model is then scored on the whole test set by the same `loop.evaluate`, so the
table shows that the faster loop learns as well. Needs only torch and this package. A problem
the user can fix (no CUDA, a damaged data/mnist/ file) is one line, as in every stage.
"""

import argparse
import contextlib
import copy
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from normlab import config  # noqa: E402
from normlab.data import fetch  # noqa: E402
from normlab.errors import NormlabError, run_stage  # noqa: E402
from normlab.nets.blocks import Dropout  # noqa: E402
from normlab.nets.build import count_params  # noqa: E402
from normlab.train.device import compile_model  # noqa: E402
from normlab.train.evaluation import evaluate  # noqa: E402
from normlab.train.loop import train_epoch  # noqa: E402
from normlab.train.optim import make_optimizer, make_scheduler  # noqa: E402
from normlab.train.prepare import prepare  # noqa: E402


class SeedStyleMnist(Dataset):
    """Per-sample pipeline of the write-ups: ToTensor → RandomRotation → Normalize, one image
    at a time."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, rotate: float, mean: float, std: float
    ):
        self.images, self.labels = images, labels
        self.rotate, self.mean, self.std = rotate, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i].float().div(255).unsqueeze(0)  # 1×1×H×W
        if self.rotate:
            angle = math.radians((torch.rand(()).item() * 2 - 1) * self.rotate)
            c, s = math.cos(angle), math.sin(angle)
            theta = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]])
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return (x[0] - self.mean) / self.std, self.labels[i]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forever(loader: DataLoader):
    while True:
        yield from loader


def reference_train(model, opt, sched, batches, steps: int, device: torch.device) -> float:
    """The seed-style loop; returns seconds for `steps` steps (the host reads the loss and hits
    every step, as the write-ups do)."""
    model.train()
    sync(device)
    start = time.perf_counter()
    total_loss, correct = 0.0, 0
    for _ in range(steps):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.item()
        correct += out.argmax(1).eq(y).sum().item()
    sync(device)
    return time.perf_counter() - start


def reference_eval(model, loader: DataLoader, device: torch.device) -> float:
    """The seed-style test loop: per-batch `.item()`; returns seconds."""
    model.eval()
    sync(device)
    start = time.perf_counter()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss += F.cross_entropy(out, y, reduction="sum").item()
            correct += out.argmax(1).eq(y).sum().item()
    sync(device)
    return time.perf_counter() - start


def seed_style(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` as the write-ups build it: torch's nn.Dropout, default memory format."""
    ref = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    for parent in ref.modules():
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, torch.nn.Dropout(child.p))
    return ref


def fresh(model, params, seed: int, steps: int):
    """Re-initialise `model` in place (seeded) and give it the recipe's optimizer and a one-cycle
    over `steps`; in place, so a compiled model is compiled once, in the warm-up."""
    torch.manual_seed(seed)
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    r = params.recipe
    opt = make_optimizer(model, r.lr, r.momentum, params.l2)
    return model, opt, make_scheduler(opt, r.schedule, r.lr, steps)


def normlab_train(exp, params, net, opt, sched, seed: int) -> float:
    """One `loop.train_epoch` over the limited split (= the timed steps); returns seconds."""
    torch.manual_seed(seed)
    sync(exp.device)
    start = time.perf_counter()
    train_epoch(
        net,
        opt,
        sched,
        exp.train,
        exp.batcher,
        batch_size=params.recipe.batch_size,
        l1=params.l1,
        autocast=exp.autocast,
        epoch=1,
        progress=lambda n: None,
    )
    sync(exp.device)
    return time.perf_counter() - start


def stage_copy(tmp: Path, raw: dict) -> Path:
    """The stages, the library, `raw` as params.yaml and the committed recipes.yaml in `tmp`: a
    run away from this tree."""
    for folder in ("stages", "normlab"):
        shutil.copytree(ROOT / folder, tmp / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp / "recipes.yaml").write_text(yaml.safe_dump(committed("recipes.yaml"), sort_keys=False))
    return tmp


def stage_seconds(raw: dict, mnist: Path) -> float:
    """Run the real `train` stage with the default recipe in a temp copy of the repo; wall
    seconds."""
    with tempfile.TemporaryDirectory(prefix="normlab-bench-") as tmp:
        work = stage_copy(Path(tmp), raw)
        shutil.copytree(mnist, work / "data" / "raw" / "mnist")
        subprocess.run([sys.executable, "-m", "stages.validate"], cwd=work, check=True)
        start = time.perf_counter()
        if subprocess.run([sys.executable, "-m", "stages.train"], cwd=work).returncode:
            raise NormlabError("the train stage failed (its error is above)")
        return time.perf_counter() - start


def startup_seconds(raw: dict) -> float:
    """Wall time of `python -m stages.validate` (import + params check + write): a stage's
    start-up."""
    with tempfile.TemporaryDirectory(prefix="normlab-bench-") as tmp:
        work = stage_copy(Path(tmp), raw)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "stages.validate"], cwd=work, check=True, capture_output=True
            )
            times.append(time.perf_counter() - start)
        return statistics.median(times)


def committed(name: str) -> dict:
    """params.yaml or recipes.yaml as committed at HEAD: the workspace's params.yaml may hold
    the last `dvc exp run -S …`."""
    try:
        shown = subprocess.run(
            ["git", "show", f"HEAD:{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", None) or str(err)
        raise NormlabError(
            f"{name} at HEAD: not readable with git ({detail.strip()}); "
            "the benchmark runs from a git checkout of normlab"
        ) from None
    return yaml.safe_load(shown.stdout)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: cuda > cpu)")
    ap.add_argument(
        "--steps", type=int, default=150, help="timed training steps per arm and repeat"
    )
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps per arm before timing")
    ap.add_argument(
        "--repeats", type=int, default=3, help="alternating timed runs per arm (median shown)"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="reference DataLoader workers (default: 1 on ≤ 2 CPU cores, else min(4, cores - 1))",
    )
    ap.add_argument(
        "--stage",
        action="store_true",
        help="also run and time the real train stage (default recipe)",
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step (default: the recipe's); benchmarks/steps.py times small batches "
        "of two checkouts",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="engine.threads for both arms (default: params.yaml's; 1 on a busy machine)",
    )
    args = ap.parse_args()

    os.chdir(ROOT)  # fetch takes data/mnist/ from here, as the download stage does
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    raw = {**committed("params.yaml"), "dataset": "mnist", "device": args.device}
    if args.batch_size:
        raw["train"] = {**raw["train"], "batch_size": args.batch_size}
    if args.threads is not None:
        raw["engine"] = {**raw["engine"], "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="normlab-bench-") as tmp:
        mnist = Path(tmp) / "mnist"
        fetch.download("mnist", mnist)
        benchmark(args, raw, mnist)


def benchmark(args: argparse.Namespace, raw: dict, mnist: Path) -> None:
    """Time both arms on the MNIST files in `mnist` with the params `raw`; print the table."""
    params = config.parse(raw, committed("recipes.yaml"))
    r = params.recipe
    batch = r.batch_size
    bench = params.model_copy(update={"limit": args.steps * batch})
    exp = prepare(bench, root=mnist.parent)  # the same loader dvc repro uses
    device = exp.device
    full = prepare(params.model_copy(update={"limit": 0}), root=mnist.parent)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = args.workers if args.workers is not None else (1 if cores <= 2 else min(4, cores - 1))
    mean, std = exp.batcher.mean.item(), exp.batcher.std.item()
    cpu_images, cpu_labels = exp.train.images.cpu(), exp.train.labels.cpu()
    train_set = SeedStyleMnist(cpu_images, cpu_labels, r.rotate, mean, std)
    loader = DataLoader(
        train_set,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    test_set = SeedStyleMnist(full.test.images.cpu(), full.test.labels.cpu(), 0, mean, std)
    test_loader = DataLoader(
        test_set,
        batch_size=1000,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    batches = forever(loader)

    print(
        "benchmark of MNIST (data/mnist/, md5-verified; params.yaml at "
        f"HEAD with dataset: mnist, whatever the workspace names): model {r.model} "
        f"({count_params(exp.model):,} params) norm={params.norm}, device {device} "
        f"({device_name(device)})"
    )
    print(
        f"torch {torch.__version__}, cores {cores}, torch threads {torch.get_num_threads()} "
        f"(interop {torch.get_num_interop_threads()}), "
        f"reference DataLoader workers {workers}, load average {os.getloadavg()[0]:.1f}"
    )
    if os.getloadavg()[0] > cores:
        print(
            "warning: the machine is busy (load > cores): timings are noisy, and with more than "
            "one torch thread per op they are dominated by waiting for descheduled threads "
            "(engine.threads: 1 avoids that)"
        )
    print(
        f"batch {batch}, {args.steps} timed steps × {args.repeats} repeats "
        f"after {args.warmup} warm-up steps; engine {params.engine.model_dump()}"
    )

    ref_model = seed_style(exp.model)
    nl_model = exp.model
    net = (
        compile_model(nl_model, device) if params.engine.compile else nl_model
    )  # as stages/train.py does

    # Warm-up of both arms (kernels, allocator, loader workers, compilation); the timed runs
    # re-initialise the models.
    reference_train(*fresh(ref_model, bench, 10_000, args.steps), batches, args.warmup, device)
    warm = prepare(bench.model_copy(update={"limit": args.warmup * batch}), root=mnist.parent)
    opt, sched = fresh(nl_model, bench, 10_000, args.warmup)[1:]
    normlab_train(warm, bench, net, opt, sched, seed=10_000)

    eval_batch = params.engine.eval_batch_size
    times: dict[str, list[float]] = {"reference": [], "normlab": []}
    accs: dict[str, list[float]] = {"reference": [], "normlab": []}
    for rep in range(args.repeats):
        seed = params.seed + rep
        model, opt, sched = fresh(ref_model, bench, seed, args.steps)
        times["reference"].append(reference_train(model, opt, sched, batches, args.steps, device))
        accs["reference"].append(
            evaluate(model, full.test, exp.batcher, eval_batch, contextlib.nullcontext).acc
        )
        opt, sched = fresh(nl_model, bench, seed, args.steps)[1:]
        times["normlab"].append(normlab_train(exp, bench, net, opt, sched, seed))
        accs["normlab"].append(
            evaluate(nl_model, full.test, exp.batcher, eval_batch, exp.autocast).acc
        )
        print(
            f"  repeat {rep + 1}: reference {times['reference'][-1]:.2f}s, "
            f"normlab {times['normlab'][-1]:.2f}s"
        )

    images = args.steps * batch
    rate = {arm: images / statistics.median(t) for arm, t in times.items()}
    n_test = len(full.test.labels)
    eval_ref = statistics.median(reference_eval(ref_model, test_loader, device) for _ in range(3))
    evaluate(
        net, full.test, exp.batcher, eval_batch, exp.autocast
    )  # warm (a compiled net compiles eval mode)
    eval_times = []
    for _ in range(3):
        sync(device)
        start = time.perf_counter()
        evaluate(net, full.test, exp.batcher, eval_batch, exp.autocast)
        eval_times.append(time.perf_counter() - start)
    eval_nl = statistics.median(eval_times)

    n_train = len(full.train.labels)
    steps_per_epoch = n_train // batch
    epoch_s = steps_per_epoch * batch / rate["normlab"] + eval_nl
    ref_epoch_s = steps_per_epoch * batch / rate["reference"] + eval_ref
    print()
    print(f"{'':28s}{'reference':>14s}{'normlab':>14s}{'ratio':>9s}")
    print(
        f"{'train images/s':28s}{rate['reference']:14,.0f}{rate['normlab']:14,.0f}"
        f"{rate['normlab'] / rate['reference']:8.2f}×"
    )
    step_ms = {arm: statistics.median(t) / args.steps * 1000 for arm, t in times.items()}
    print(
        f"{'train ms per step':28s}{step_ms['reference']:14.2f}{step_ms['normlab']:14.2f}"
        f"{step_ms['reference'] / step_ms['normlab']:8.2f}×"
    )
    print(
        f"{'eval images/s':28s}{n_test / eval_ref:14,.0f}{n_test / eval_nl:14,.0f}"
        f"{eval_ref / eval_nl:8.2f}×"
    )
    print(
        f"{'test acc after the steps, %':28s}{statistics.mean(accs['reference']):14.2f}"
        f"{statistics.mean(accs['normlab']):14.2f}   (mean of {args.repeats}; "
        f"ref {', '.join(f'{a:.2f}' for a in accs['reference'])}; "
        f"normlab {', '.join(f'{a:.2f}' for a in accs['normlab'])})"
    )
    print(
        f"{'s per epoch (train + eval)':28s}{ref_epoch_s:14.1f}{epoch_s:14.1f}   "
        "(estimated from the rates, "
        f"{steps_per_epoch} steps + {n_test} test images)"
    )
    start_s = startup_seconds(raw)
    print(
        f"{'stage start-up, s':28s}{'':14s}{start_s:14.2f}   "
        "(python -m stages.validate, median of 3)"
    )
    estimate = r.epochs * epoch_s + start_s
    print(
        f"{'train stage, s':28s}{r.epochs * ref_epoch_s:14.0f}{estimate:14.0f}   "
        f"(estimate: {r.epochs} epochs × s/epoch + start-up)"
    )
    if args.stage:
        print(f"{'train stage, s (measured)':28s}{'':14s}{stage_seconds(raw, mnist):14.1f}")


if __name__ == "__main__":
    run_stage(main)
