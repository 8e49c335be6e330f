"""Training and evaluation, with the whole dataset resident on the device.

Why it is shaped like this: a per-sample DataLoader is the bottleneck for a 9k-parameter net,
so images stay on the device as uint8, batches are index slices of one tensor and are
augmented as whole batches (kornia). Nothing is read back to the host inside an epoch: losses
and hits accumulate on the device and are read once per epoch.
"""

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.utils.deterministic
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from normlab.data import Split
from normlab.errors import NormlabError
from normlab.checkpoint import Checkpoint
from normlab.models import penalized


def pick_device(name: str) -> torch.device:
    """`auto` → cuda > mps > cpu; a named device that is not present is a one-line error."""
    available = ["cpu"]
    if torch.cuda.is_available():
        available.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        available.insert(0, "mps")
    if name == "auto":
        return torch.device(available[0])
    if name not in available:
        raise NormlabError(f"params.yaml: device = {name!r}: not available on this machine "
                           f"(available: auto, {', '.join(available)})")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed every RNG torch uses and ask for deterministic kernels (exact repeats on CPU).

    The flag is set through torch._C: the public `use_deterministic_algorithms` also imports
    torch._inductor to set its flag, ~1.3 s of CPU at start-up (evaluate then never imports it;
    train does anyway, via torch.optim); compile_model sets the inductor flag when it is used.
    Deterministic mode would also fill every new tensor with NaN (a debugging aid that catches
    reads of uninitialised memory); that costs ~200 fills a step and changes no result.
    """
    torch.manual_seed(seed)
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


@dataclass
class Batcher:
    """Turns index slices of a resident uint8 split into normalised, augmented float batches."""

    mean: torch.Tensor  # per channel, shape 1×C×1×1, in [0, 1] units
    std: torch.Tensor
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    channels_last: bool = False

    @classmethod
    def fit(cls, images: torch.Tensor, **kwargs) -> "Batcher":
        """Normalisation statistics from the training images, per channel."""
        x = images.float().div_(255)
        return cls(x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True), **kwargs)

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float().div_(255)
        if train and self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class RandomRotation(nn.Module):
    """Rotate each image by its own uniform angle in ±`degrees` about the centre (bilinear, zero fill).

    Why not kornia's RandomRotation: it costs ~1.1 ms of host time per batch whatever the batch
    size (it draws its parameters on the CPU and builds them op by op), more than a whole GPU
    step of this net; here the angles are drawn on the device and the warp is a few
    elementwise ops + grid_sample, which torch.compile / CUDA graphs can capture.
    """

    def __init__(self, degrees: float):
        super().__init__()
        self.radians = math.radians(degrees)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        angle = (torch.rand(n, 1, 1, device=x.device) * 2 - 1) * self.radians
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        # The sampling grid affine_grid would build (pixel centres in [-1, 1], align_corners=False),
        # rotated by broadcasting: ~5× cheaper on a CPU than affine_grid's batched matmul.
        cols = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
        rows = ((torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1)[:, None]
        grid = torch.stack([cos * cols - sin * rows, sin * cols + cos * rows], -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_augment(rotate: float, crop: int, flip: bool, cutout: int, size: int) -> nn.Module | None:
    """Batch augmentation on the device (kornia; rotation by hand, see RandomRotation), or None."""
    if crop or flip or cutout:  # importing kornia costs ~0.5-1 s of start-up: only when used
        import kornia.augmentation as K

    ops: list[nn.Module] = []
    if crop:
        ops.append(K.RandomCrop((size, size), padding=crop))
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if rotate:
        ops.append(RandomRotation(rotate))
    if cutout:
        area = cutout * cutout / (size * size)
        ops.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), p=1.0))
    return nn.Sequential(*ops) if ops else None


def compile_model(model: nn.Module, device: torch.device) -> nn.Module:
    """torch.compile, with CUDA graphs on CUDA: a 9k-parameter net is bound by kernel launches
    there, and replaying a captured graph removes them. On a CPU it does not pay (after an
    11-90 s compile the step was slower than eager on 2 cores), hence `engine.compile: false`."""
    torch.use_deterministic_algorithms(True, warn_only=True)  # now also for inductor's kernels
    return torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else "default")


def weight_stats(model: nn.Module) -> tuple[float, float, float]:
    """Σ|w|, Σw² and the fraction of |w| < 1e-3, over the penalised weights only."""
    with torch.no_grad():
        flat = torch.cat([w.detach().flatten().float() for w in penalized(model)])
        return flat.abs().sum().item(), flat.square().sum().item(), (flat.abs() < 1e-3).float().mean().item()


def l1_term(model: nn.Module, l1: float) -> torch.Tensor:
    """l1 · Σ|w| over conv and linear weights: the term added to the loss."""
    return l1 * sum(w.abs().sum() for w in penalized(model))


def make_optimizer(model: nn.Module, lr: float, momentum: float, l2: float) -> torch.optim.Optimizer:
    """SGD with weight decay `l2` on conv/linear weights only (the gradient of l2/2·Σw²)."""
    decay = {id(w) for w in penalized(model)}
    groups = [
        {"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": l2},
        {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, lr: float, total_steps: int):
    """Per-step learning-rate schedule.

    onecycle is Smith's policy as torch implements it: lr warms up from lr/25 to `lr` over the
    first 25 % of steps, then anneals (cosine) to ~0, while momentum cycles 0.95 → 0.85 → 0.95
    (so `momentum` applies to cosine/constant only). The warm-up is at least 1.5 steps: with
    exactly one step OneCycleLR divides by zero, which only 1-5-step smoke runs could hit.
    """
    if schedule == "onecycle":
        warmup = min(0.75, max(0.25, 1.5 / total_steps))
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=warmup)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@dataclass
class Evaluation:
    loss: float
    acc: float  # percent
    predictions: torch.Tensor  # on the CPU
    confidence: torch.Tensor  # softmax probability of the predicted class


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, batcher: Batcher, batch_size: int, autocast,
             tta: bool = False) -> Evaluation:
    """Loss and accuracy over a whole split, in large batches, one host read at the end.

    With `tta` each image is scored by the mean of the logits for it and for its mirror image
    (the flip the recipe trained with), which averages out some of a small net's left/right noise.
    """
    model.eval()
    losses, preds, confs = [], [], []
    for start in range(0, len(split.labels), batch_size):
        x = batcher(split.images[start:start + batch_size], train=False)
        y = split.labels[start:start + batch_size]
        with autocast():
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(-1)).float()) / 2
        losses.append(F.cross_entropy(logits, y, reduction="sum"))
        conf, pred = logits.softmax(1).max(1)
        preds.append(pred)
        confs.append(conf)
    pred = torch.cat(preds)
    loss = torch.stack(losses).sum().item() / len(split.labels)
    acc = 100.0 * (pred == split.labels).float().mean().item()
    return Evaluation(loss, acc, pred.cpu(), torch.cat(confs).float().cpu())


@dataclass
class Run:
    """What one training run needs, in plain values (already validated)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    schedule: str
    l1: float
    l2: float
    seed: int
    eval_batch_size: int
    tta: bool = False
    history: list[dict] = field(default_factory=list)


def train_epoch(model: nn.Module, opt, sched, split: Split, batcher: Batcher, run: Run, autocast,
                progress) -> dict:
    """One pass over the shuffled training set; returns the epoch's averages (one host read)."""
    model.train()
    n = len(split.labels)
    steps = n // run.batch_size  # equal batches: a last batch of 1 would break BatchNorm
    perm = torch.randperm(n, device=split.labels.device)
    step_loss = torch.zeros(steps, device=split.labels.device)
    step_total = torch.zeros(steps, device=split.labels.device)  # data + L1: what is optimised
    hits = torch.zeros((), device=split.labels.device)
    compiled = hasattr(model, "_orig_mod")  # torch.compile's wrapper; tested so eager runs never import inductor
    for step in range(steps):
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()  # the CUDA graph may now reuse its buffers
        idx = perm[step * run.batch_size:(step + 1) * run.batch_size]
        x, y = batcher(split.images[idx], train=True), split.labels[idx]
        with autocast():
            logits = model(x)
            data_loss = F.cross_entropy(logits.float(), y)
        loss = data_loss + l1_term(model, run.l1) if run.l1 else data_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step_loss[step] = data_loss.detach()
        step_total[step] = loss.detach()
        hits += (logits.argmax(1) == y).sum()
        progress(1)
    # The optimised loss, not only its data part: a huge l1 can overflow the L1 term first.
    bad = (~torch.isfinite(step_total)).nonzero()
    if len(bad):
        s = int(bad[0])
        raise diverged(len(run.history) + 1, s + 1, step_total[s].item())
    return {"train/loss": step_loss.mean().item(), "train/acc": 100.0 * hits.item() / (steps * run.batch_size)}


def diverged(epoch: int, step: int, loss: float) -> NormlabError:
    return NormlabError(f"diverged at epoch {epoch}, step {step} (loss={loss}): lower lr or l1")


def epoch_record(model: nn.Module, run: Run, train_stats: dict, test: Evaluation, lr: float) -> dict:
    """Everything logged per epoch, including the penalty terms, so their effect is visible."""
    abs_sum, sq_sum, small = weight_stats(model)
    return {
        "epoch": len(run.history) + 1,
        **train_stats,
        "test/loss": test.loss,
        "test/acc": test.acc,
        "reg/l1": run.l1 * abs_sum,
        "reg/l2": run.l2 / 2 * sq_sum,
        "weights/abs_sum": abs_sum,
        "weights/small_frac": small,
        "lr": lr,
    }


def check_batch(batch_size: int, n: int) -> None:
    if batch_size > n:
        raise NormlabError(f"params.yaml: train.batch_size = {batch_size}: larger than the {n} training images "
                           f"(allowed: 1..{n}, or raise data.limit)")


def fit(model: nn.Module, train: Split, test: Split, batcher: Batcher, run: Run, autocast,
        checkpoint: Checkpoint, log: Callable[[dict], None],
        probe: Callable[[nn.Module], dict] | None = None) -> float:
    """Train for `run.epochs`, resuming from `checkpoint` if it holds this run; return seconds spent.

    `probe(model)`, if given, runs after each epoch (outside the timed part); the dict it returns
    is merged into that epoch's record (e.g. features.feature_probe's percentiles).

    The RNG is reseeded from (seed, epoch) at each epoch start, so an epoch resumed after a
    kill draws exactly the same shuffles, augmentations and dropout masks as it would have.
    """
    check_batch(run.batch_size, len(train.labels))
    steps = len(train.labels) // run.batch_size
    opt = make_optimizer(model, run.lr, run.momentum, run.l2)
    sched = make_scheduler(opt, run.schedule, run.lr, run.epochs * steps)
    seconds = checkpoint.restore(model, opt, sched, run)
    for record in run.history:  # a resumed run logs its earlier epochs again, from the checkpoint
        log(record)
    for epoch in range(len(run.history) + 1, run.epochs + 1):
        torch.manual_seed(run.seed * 100_003 + epoch)
        start = time.perf_counter()
        with tqdm(total=steps, desc=f"epoch {epoch}/{run.epochs}", unit="step", leave=False,
                  disable=None) as bar:
            stats = train_epoch(model, opt, sched, train, batcher, run, autocast, bar.update)
        result = evaluate(model, test, batcher, run.eval_batch_size, autocast, run.tta)
        if not math.isfinite(result.loss):  # finite train losses can still leave inf/nan BN statistics
            raise diverged(epoch, steps, result.loss)
        seconds += time.perf_counter() - start
        record = epoch_record(model, run, stats, result, sched.get_last_lr()[0])
        if probe is not None:
            record.update(probe(model))
        run.history.append(record)
        checkpoint.save(model, opt, sched, run, seconds)
        log(record)
        tqdm.write(f"epoch {epoch:3d}/{run.epochs}  train loss {record['train/loss']:.4f} acc {record['train/acc']:6.2f}"
                   f"  test loss {record['test/loss']:.4f} acc {record['test/acc']:6.2f}"
                   f"  l1 {record['reg/l1']:.4g}  l2 {record['reg/l2']:.4g}  |w|<1e-3 {record['weights/small_frac']:.1%}"
                   f"  {seconds:6.1f}s")
    return seconds
