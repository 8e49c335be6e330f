"""The training loop: optimizer, schedule, epochs, evaluation, with the data resident on the device.

Nothing is read back to the host inside an epoch: losses and hits accumulate on the device and
are read once per epoch. The loop takes validated values (the `Recipe`, plain keywords) and
returns the history; it reads no params file and keeps no state between calls.
"""

import math
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from normlab.augment import Batcher
from normlab.checkpoint import Checkpoint
from normlab.config import Recipe, Scope
from normlab.data import Split
from normlab.device import Autocast
from normlab.errors import NormlabError
from normlab.models import penalized


@dataclass(frozen=True)
class Evaluation:
    loss: float
    acc: float  # percent
    predictions: torch.Tensor  # on the CPU
    confidence: torch.Tensor  # softmax probability of the predicted class


@dataclass(frozen=True)
class Fitted:
    history: list[dict]  # one record per epoch (see epoch_record)
    seconds: float  # training time, resumed runs included


def weight_stats(model: nn.Module, scope: Scope = "weights") -> tuple[float, float, float]:
    """Σ|w|, Σw² and the fraction of |w| < 1e-3, over the parameters of `scope` only."""
    with torch.no_grad():
        flat = torch.cat([w.detach().flatten().float() for w in penalized(model, scope)])
        return (
            flat.abs().sum().item(),
            flat.square().sum().item(),
            (flat.abs() < 1e-3).float().mean().item(),
        )


def l1_term(
    model: nn.Module, l1: float, form: str = "sum", scope: Scope = "weights"
) -> torch.Tensor:
    """The term added to the loss: l1 · Σ|w| (form sum), or l1 · Σ over tensors of mean |w|
    (form mean, seed 003's: each weight then weighs l1 / its tensor's size), over `scope`."""
    if form == "mean":
        return l1 * sum(w.abs().mean() for w in penalized(model, scope))
    return l1 * sum(w.abs().sum() for w in penalized(model, scope))


def make_optimizer(
    model: nn.Module,
    lr: float,
    momentum: float,
    l2: float,
    *,
    nesterov: bool = True,
    scope: Scope = "weights",
) -> torch.optim.Optimizer:
    """SGD with weight decay `l2` (the gradient of l2/2·Σw²) on the parameters of `scope` only;
    Nesterov momentum if `nesterov` and momentum > 0 (torch has no Nesterov without momentum)."""
    decay = {id(w) for w in penalized(model, scope)}
    groups = [
        {"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": l2},
        {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)


def make_scheduler(
    opt: torch.optim.Optimizer,
    schedule: str,
    lr: float,
    total_steps: int,
    *,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    epoch_steps: int = 1,
):
    """Per-step learning-rate schedule.

    onecycle is Smith's policy as torch implements it: lr warms up from lr/25 to `lr` over the
    first 25 % of steps, then anneals (cosine) to ~0, while momentum cycles 0.95 → 0.85 → 0.95
    (so `momentum` applies to cosine/constant only). The warm-up is at least 1.5 steps: with
    exactly one step OneCycleLR divides by zero, which only 1-5-step smoke runs could hit.
    step is an epoch-stepped StepLR/MultiStepLR, stepped here per batch as the others: every
    step of epoch e (1-based; `epoch_steps` steps each) runs at lr · gamma^(milestones < e).
    """
    if schedule == "onecycle":
        warmup = min(0.75, max(0.25, 1.5 / total_steps))
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=lr, total_steps=total_steps, pct_start=warmup
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: gamma ** bisect_right(milestones, step // epoch_steps)
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    batcher: Batcher,
    batch_size: int,
    autocast: Autocast,
    tta: bool = False,
) -> Evaluation:
    """Loss and accuracy over a whole split, in large batches, one host read at the end.

    With `tta` each image is scored by the mean of the logits for it and for its mirror image
    (the flip the recipe trained with), which averages out some of a small net's left/right noise.
    """
    model.eval()
    losses, preds, confs = [], [], []
    for start in range(0, len(split.labels), batch_size):
        x = batcher(split.images[start : start + batch_size], train=False)
        y = split.labels[start : start + batch_size]
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


def train_epoch(
    model: nn.Module,
    opt,
    sched,
    split: Split,
    batcher: Batcher,
    *,
    batch_size: int,
    l1: float,
    autocast: Autocast,
    epoch: int,
    progress: Callable[[int], object],
    l1_form: str = "sum",
    l1_scope: Scope = "weights",
) -> dict:
    """One pass over the shuffled training set; returns the epoch's averages (one host read)."""
    model.train()
    n = len(split.labels)
    steps = n // batch_size  # equal batches: a last batch of 1 would break BatchNorm
    device = split.labels.device
    perm = torch.randperm(n, device=device)
    step_loss = torch.zeros(steps, device=device)
    step_total = torch.zeros(steps, device=device)  # data + L1: what is optimised
    hits = torch.zeros((), device=device)
    # torch.compile's wrapper; tested by attribute so eager runs never import inductor
    compiled = hasattr(model, "_orig_mod")
    for step in range(steps):
        if compiled:
            torch.compiler.cudagraph_mark_step_begin()  # the CUDA graph may now reuse its buffers
        idx = perm[step * batch_size : (step + 1) * batch_size]
        x, y = batcher(split.images[idx], train=True), split.labels[idx]
        with autocast():
            logits = model(x)
            data_loss = F.cross_entropy(logits.float(), y)
        loss = data_loss + l1_term(model, l1, l1_form, l1_scope) if l1 else data_loss
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
        raise diverged(epoch, s + 1, step_total[s].item())
    return {
        "train/loss": step_loss.mean().item(),
        "train/acc": 100.0 * hits.item() / (steps * batch_size),
    }


def diverged(epoch: int, step: int, loss: float) -> NormlabError:
    return NormlabError(f"diverged at epoch {epoch}, step {step} (loss={loss}): lower lr or l1")


def epoch_record(
    model: nn.Module,
    *,
    epoch: int,
    l1: float,
    l2: float,
    recipe: Recipe,
    train_stats: dict,
    test: Evaluation,
    lr: float,
) -> dict:
    """Everything logged per epoch, including the penalty terms, so their effect is visible.

    reg/l1 is the L1 term as added to the loss (its form and scope from `recipe`), reg/l2 is
    l2/2 · Σw² over the L2 scope; Σ|w| and the share of |w| < 1e-3 are over the L1 scope. `lr`
    is the rate after the epoch's last step, where the next epoch starts.
    """
    r = recipe
    abs_sum, sq_sum, small = weight_stats(model, r.l1_scope)
    if r.l2_scope != r.l1_scope:
        sq_sum = weight_stats(model, r.l2_scope)[1]
    reg_l1 = l1 * abs_sum
    if r.l1_form == "mean":
        with torch.no_grad():
            reg_l1 = float(l1_term(model, l1, "mean", r.l1_scope))
    return {
        "epoch": epoch,
        **train_stats,
        "test/loss": test.loss,
        "test/acc": test.acc,
        "reg/l1": reg_l1,
        "reg/l2": l2 / 2 * sq_sum,
        "weights/abs_sum": abs_sum,
        "weights/small_frac": small,
        "lr": lr,
    }


def check_batch(batch_size: int, n: int) -> None:
    if batch_size > n:
        raise NormlabError(
            f"params.yaml: train.batch_size = {batch_size}: larger than the {n} "
            f"training images (allowed: 1..{n}, or raise data.limit)"
        )


def _print_epoch(record: dict, epochs: int, seconds: float) -> None:
    r = record
    tqdm.write(
        f"epoch {r['epoch']:3d}/{epochs}  train loss {r['train/loss']:.4f} "
        f"acc {r['train/acc']:6.2f}  test loss {r['test/loss']:.4f} acc {r['test/acc']:6.2f}"
        f"  l1 {r['reg/l1']:.4g}  l2 {r['reg/l2']:.4g}"
        f"  |w|<1e-3 {r['weights/small_frac']:.1%}  {seconds:6.1f}s"
    )


def fit(
    model: nn.Module,
    *,
    train: Split,
    test: Split,
    batcher: Batcher,
    recipe: Recipe,
    l1: float,
    l2: float,
    seed: int,
    eval_batch_size: int,
    autocast: Autocast,
    checkpoint: Checkpoint,
    log: Callable[[dict], None] | None = None,
    probe: Callable[[nn.Module], dict] | None = None,
) -> Fitted:
    """Train for `recipe.epochs`, resuming from `checkpoint` if it holds this run.

    `log(record)`, if given, receives every epoch's record (a resumed run's earlier ones too);
    `probe(model)`, if given, runs after each epoch (outside the timed part) and its dict is
    merged into that epoch's record (e.g. features.feature_probe's percentiles).

    The RNG is reseeded from (seed, epoch) at each epoch start, so an epoch resumed after a
    kill draws exactly the same shuffles, augmentations and dropout masks as it would have.
    """
    check_batch(recipe.batch_size, len(train.labels))
    steps = len(train.labels) // recipe.batch_size
    opt = make_optimizer(
        model, recipe.lr, recipe.momentum, l2, nesterov=recipe.nesterov, scope=recipe.l2_scope
    )
    sched = make_scheduler(
        opt,
        recipe.schedule,
        recipe.lr,
        recipe.epochs * steps,
        milestones=recipe.milestones,
        gamma=recipe.gamma,
        epoch_steps=steps,
    )
    history, seconds = checkpoint.restore(model, opt, sched, recipe.epochs)
    for record in history:  # a resumed run logs its earlier epochs again, from the checkpoint
        if log is not None:
            log(record)
    for epoch in range(len(history) + 1, recipe.epochs + 1):
        torch.manual_seed(seed * 100_003 + epoch)
        start = time.perf_counter()
        with tqdm(
            total=steps,
            desc=f"epoch {epoch}/{recipe.epochs}",
            unit="step",
            leave=False,
            disable=None,
        ) as bar:
            stats = train_epoch(
                model,
                opt,
                sched,
                train,
                batcher,
                batch_size=recipe.batch_size,
                l1=l1,
                autocast=autocast,
                epoch=epoch,
                progress=bar.update,
                l1_form=recipe.l1_form,
                l1_scope=recipe.l1_scope,
            )
        result = evaluate(model, test, batcher, eval_batch_size, autocast, recipe.tta)
        if not math.isfinite(result.loss):  # finite train losses can leave inf/nan BN statistics
            raise diverged(epoch, steps, result.loss)
        seconds += time.perf_counter() - start
        record = epoch_record(
            model,
            epoch=epoch,
            l1=l1,
            l2=l2,
            recipe=recipe,
            train_stats=stats,
            test=result,
            lr=sched.get_last_lr()[0],
        )
        if probe is not None:
            record.update(probe(model))
        history = [*history, record]
        checkpoint.save(model, opt, sched, history, seconds)
        if log is not None:
            log(record)
        _print_epoch(record, recipe.epochs, seconds)
    return Fitted(history, seconds)
