"""Packed runs: K runs that share a network shape and a recipe, trained as one wide model.

Why: a 9k-parameter net cannot keep a GPU busy (issue 17, docs/performance.md): one step of K
runs side by side costs about what one run's step costs there. Each packed run stays the same
experiment as training it alone with loop.fit, up to float rounding:

- its model is built as normlab builds it, under its own seed (`prepare_packed`), then packed
  (`pack`): a conv becomes a grouped conv (groups × K), BatchNorm2d(C) BatchNorm2d(K·C) (its
  statistics are per channel, so per run, running ones included), GroupNorm(g, C)
  GroupNorm(K·g, K·C) (no group spans two runs), a linear layer K blocks. Run k owns channels
  [k·C, (k+1)·C) of every map and the k-th block along dim 0 of every parameter and buffer;
- its batch is its own (own shuffle, own augmentation), the K batches stacked along the
  channels: N×(K·C)×H×W;
- its shuffle, rotation angles and dropout masks come from its own torch.Generator, reseeded
  at each epoch as loop.fit reseeds the global one and drawn in the same order (permutation,
  then per step the angles, then the masks layer by layer);
- the loss is the sum of the runs' losses, so each run's gradient is its own; its L1 term and
  its weight decay use its own l1 and l2; SGD acts elementwise, so each update is its own.

Runs may differ in norm, groups, l1, l2 and seed (`pack_key` says what must be equal). A layer
whose runs differ (bn beside gn, a conv with a bias for norm=none) is packed per stretch of
equal runs (`Mixed`), at the cost of a split and a concatenation there.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from normlab.config import check_batch
from normlab.data.augment import Batcher, RandomRotation, rotate
from normlab.data.readers import Split
from normlab.errors import DivergedError, NormlabError
from normlab.packed.epochs import Epoch, epoch_entries, note, print_epoch, replay
from normlab.packed.merge import Packed, evaluate_packed, pack, per_run_logits, side_by_side, unpack
from normlab.recipe import Recipe
from normlab.train.checkpoint import Checkpoint
from normlab.train.device import Autocast
from normlab.train.loop import Fitted
from normlab.train.optim import make_optimizer, penalized, recipe_scheduler
from normlab.types import Scope


def _laid(packed: Packed, params: Sequence[nn.Parameter], values: Sequence[float]):
    """Each parameter with the runs' `values` laid along its dim 0, shaped to broadcast."""
    spans, out = packed.spans(), []
    for p in params:
        first, n = spans[id(p)]
        v = torch.tensor(values[first : first + n], dtype=p.dtype, device=p.device)
        out.append((p, v.repeat_interleave(p.shape[0] // n).view(-1, *[1] * (p.dim() - 1))))
    return out


def l1_per_run(
    packed: Packed, l1: Sequence[float], form: str = "sum", scope: Scope = "weights"
) -> Callable[[], torch.Tensor]:
    """A function giving each run's L1 term (a K-vector) as optim.l1_term computes it alone:
    l1_k · Σ|w_k| (form sum), or l1_k · Σ over tensors of mean |w_k| (form mean)."""
    spans = packed.spans()
    pieces = [(p, *spans[id(p)]) for p in penalized(packed.net, scope)]
    coefficients = torch.tensor(l1, device=pieces[0][0].device)

    def term() -> torch.Tensor:
        terms = []
        for p, first, n in pieces:
            each = p.abs().reshape(n, -1)
            each = each.mean(1) if form == "mean" else each.sum(1)
            terms.append(F.pad(each, (first, packed.runs - first - n)))
        return torch.stack(terms).sum(0) * coefficients

    return term


class OwnRotation(nn.Module):
    """RandomRotation for one run of a pack: its angles come from the run's own generator,
    drawn as RandomRotation draws them from torch's global one."""

    def __init__(self, radians: float, generator: torch.Generator):
        super().__init__()
        self.radians = radians
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        draw = torch.rand(x.shape[0], 1, 1, device=x.device, generator=self.generator)
        return rotate(x, (draw * 2 - 1) * self.radians)


def _own_batcher(batcher: Batcher, generator: torch.Generator) -> Batcher:
    """The batcher for one run: its augmentation draws from the run's generator; the wide
    input's memory format is set once, by side_by_side."""
    return replace(
        batcher, augment=_with_generator(batcher.augment, generator), channels_last=False
    )


def _with_generator(augment: nn.Module | None, generator: torch.Generator) -> nn.Module | None:
    if augment is None:
        return None
    if type(augment) is RandomRotation:
        return OwnRotation(augment.radians, generator)
    if type(augment) is nn.Sequential:
        return nn.Sequential(*(_with_generator(op, generator) for op in augment))
    raise NormlabError(
        f"packed runs: the augmentation {type(augment).__name__} draws from torch's global "
        "generator (allowed: rotate; train runs with crop, flip, cutout, jitter or "
        "randaugment alone)"
    )


def _train_epoch(
    packed: Packed,
    opt,
    sched,
    split: Split,
    batchers: Sequence[Batcher],
    perms: Sequence[torch.Tensor],
    *,
    batch_size: int,
    l1_term: Callable[[], torch.Tensor] | None,
    decay: Sequence[tuple[nn.Parameter, torch.Tensor]],
    autocast: Autocast,
    channels_last: bool,
    progress: Callable[[int], object],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass of every run over its own shuffle, as loop.train_epoch: per step the sum of the
    runs' losses is optimised. Returns (on the device) per step × run the data loss and the
    optimised loss, and per run the hits."""
    net, runs = packed.net, packed.runs
    net.train()
    steps = len(split.labels) // batch_size
    device = split.labels.device
    step_loss = torch.zeros(steps, runs, device=device)
    step_total = torch.zeros(steps, runs, device=device)
    hits = torch.zeros(runs, device=device)
    for step in range(steps):
        idx = [p[step * batch_size : (step + 1) * batch_size] for p in perms]
        batches = [b(split.images[i], train=True) for b, i in zip(batchers, idx, strict=True)]
        x = side_by_side(batches, channels_last)
        y = torch.stack([split.labels[i] for i in idx], 1)  # N×K
        with autocast():
            logits = per_run_logits(net(x), runs)
            data_loss = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(0)
        loss = data_loss + l1_term() if l1_term is not None else data_loss
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        with torch.no_grad():
            for p, l2 in decay:  # each run's own SGD weight decay: grad += l2_k · w
                p.grad.addcmul_(p, l2)
        opt.step()
        sched.step()
        step_loss[step] = data_loss.detach()
        step_total[step] = loss.detach()
        hits += (logits.argmax(-1) == y).sum(0)
        progress(1)
    return step_loss, step_total, hits


def _each(value: float | Sequence[float], runs: int, key: str) -> list[float]:
    values = [float(value)] * runs if isinstance(value, int | float) else list(value)
    if len(values) != runs:
        raise NormlabError(f"packed runs: {len(values)} values of {key} for {runs} runs")
    return values


def fit_packed(
    models: Sequence[nn.Module],
    *,
    train: Split,
    test: Split,
    batcher: Batcher,
    recipe: Recipe,
    l1: float | Sequence[float],
    l2: float | Sequence[float],
    seeds: Sequence[int],
    eval_batch_size: int,
    autocast: Autocast,
    checkpoint: Checkpoint | None = None,
    log: Callable[[int, dict], None] | None = None,
) -> list[Fitted | DivergedError]:
    """loop.fit for K runs at once, packed: run k with its own model, l1, l2 and seed.

    Returns per run its Fitted, whose history has loop.epoch_record's keys (no feature-probe
    percentiles: the probe is per model and is left out here), or the DivergedError loop.fit
    would have raised for it (a diverged run: the others train on, untouched by its values).
    `seconds` is the pack's time, shared by its runs. The models end trained, as loop.fit's
    does; `log(k, record)` receives each run's records (a resumed pack's earlier ones too).
    A checkpoint holds the whole pack, so it resumes as a pack of the same runs.
    """
    runs = len(models)
    l1s, l2s = _each(l1, runs, "l1"), _each(l2, runs, "l2")
    if len(seeds) != runs:
        raise NormlabError(f"packed runs: {len(seeds)} seeds for {runs} runs")
    r = recipe
    check_batch(r.batch_size, len(train.labels))
    steps = len(train.labels) // r.batch_size
    device = train.labels.device
    generators = [torch.Generator(device=device) for _ in range(runs)]
    packed = pack(models, generators, channels_last=batcher.channels_last)
    batchers = [_own_batcher(batcher, g) for g in generators]
    # Weight decay is added per run in _train_epoch: SGD's is one number per parameter tensor.
    opt = make_optimizer(packed.net, r.lr, r.momentum, 0.0, nesterov=r.nesterov)
    sched = recipe_scheduler(opt, r, steps)
    l1_term = l1_per_run(packed, l1s, r.l1_form, r.l1_scope) if any(l1s) else None
    decay = _laid(packed, penalized(packed.net, r.l2_scope), l2s) if any(l2s) else []
    saved, seconds = [], 0.0
    if checkpoint is not None:
        saved, seconds = checkpoint.restore(packed.net, opt, sched, r.epochs)
    histories, failed = replay(saved, runs, log)
    for epoch in range(len(saved) + 1, r.epochs + 1):
        if len(failed) == runs:
            break
        for generator, seed in zip(generators, seeds, strict=True):
            generator.manual_seed(seed * 100_003 + epoch)
        n = len(train.labels)
        perms = [torch.randperm(n, device=device, generator=g) for g in generators]
        start = time.perf_counter()
        desc = f"epoch {epoch}/{r.epochs}, {runs} packed runs"
        with tqdm(total=steps, desc=desc, unit="step", leave=False, disable=None) as bar:
            epoch_stats = _train_epoch(
                packed,
                opt,
                sched,
                train,
                batchers,
                perms,
                batch_size=r.batch_size,
                l1_term=l1_term,
                decay=decay,
                autocast=autocast,
                channels_last=batcher.channels_last,
                progress=bar.update,
            )
        results = evaluate_packed(packed, test, batcher, eval_batch_size, autocast, r.tta)
        seconds += time.perf_counter() - start
        unpack(packed, models)
        entries = epoch_entries(
            models, Epoch(epoch, steps, r, l1s, l2s, sched.get_last_lr()[0]), epoch_stats, results
        )
        entries = [
            {"diverged": str(failed[k])} if k in failed else e for k, e in enumerate(entries)
        ]
        saved = [*saved, entries]
        note(entries, histories, failed, log)
        if checkpoint is not None:
            checkpoint.save(packed.net, opt, sched, saved, seconds)
        print_epoch(epoch, r.epochs, results, failed, seconds)
    unpack(packed, models)
    return [failed.get(k) or Fitted(histories[k], seconds) for k in range(runs)]
