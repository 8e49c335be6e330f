"""The training loop: epochs, evaluation and fit, with the data resident on the device.

Nothing is read back to the host inside an epoch: losses and hits accumulate on the device and
are read once per epoch. The loop takes validated values (the `Recipe`, plain keywords) and
returns the history; it reads no params file and keeps no state between calls.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from normlab.config import check_batch
from normlab.data.augment import Batcher
from normlab.data.readers import Split
from normlab.errors import DivergedError
from normlab.recipe import Recipe
from normlab.train.checkpoint import Checkpoint
from normlab.train.device import Autocast
from normlab.train.evaluation import Evaluation, evaluate
from normlab.train.optim import l1_term, make_optimizer, recipe_scheduler, weight_stats
from normlab.types import Scope


@dataclass(frozen=True)
class Fitted:
    history: list[dict]  # one record per epoch (see epoch_record)
    seconds: float  # training time, resumed runs included


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
        raise DivergedError.at(epoch, s + 1, step_total[s].item())
    return {
        "train/loss": step_loss.mean().item(),
        "train/acc": 100.0 * hits.item() / (steps * batch_size),
    }


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
    val: Evaluation | None = None,
) -> dict:
    """Everything logged per epoch, including the penalty terms, so their effect is visible.

    reg/l1 is the L1 term as added to the loss (its form and scope from `recipe`), reg/l2 is
    l2/2 · Σw² over the L2 scope; Σ|w| and the share of |w| < 1e-3 are over the L1 scope. `lr`
    is the rate after the epoch's last step, where the next epoch starts. val/* only for a run
    with a validation split, so a run without one records exactly the keys it always did.
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
        **({} if val is None else {"val/loss": val.loss, "val/acc": val.acc}),
        "reg/l1": reg_l1,
        "reg/l2": l2 / 2 * sq_sum,
        "weights/abs_sum": abs_sum,
        "weights/small_frac": small,
        "lr": lr,
    }


def _print_epoch(record: dict, epochs: int, seconds: float) -> None:
    r = record
    val = f"  val acc {r['val/acc']:6.2f}" if "val/acc" in r else ""
    tqdm.write(
        f"epoch {r['epoch']:3d}/{epochs}  train loss {r['train/loss']:.4f} "
        f"acc {r['train/acc']:6.2f}  test loss {r['test/loss']:.4f} acc {r['test/acc']:6.2f}"
        f"{val}  l1 {r['reg/l1']:.4g}  l2 {r['reg/l2']:.4g}"
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
    val: Split | None = None,
) -> Fitted:
    """Train for `recipe.epochs`, resuming from `checkpoint` if it holds this run.

    `val`, if given (data.val's held-out training images), is scored after each epoch as the
    test set is, into the record's val/loss and val/acc.

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
    sched = recipe_scheduler(opt, recipe, steps)
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
            raise DivergedError.at(epoch, steps, result.loss)
        held = None
        if val is not None:
            held = evaluate(model, val, batcher, eval_batch_size, autocast, recipe.tta)
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
            val=held,
        )
        if probe is not None:
            record.update(probe(model))
        history = [*history, record]
        checkpoint.save(model, opt, sched, history, seconds)
        if log is not None:
            log(record)
        _print_epoch(record, recipe.epochs, seconds)
    return Fitted(history, seconds)
