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

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from normlab.augment import Batcher, RandomRotation
from normlab.checkpoint import Checkpoint
from normlab.config import Params, Recipe, Scope
from normlab.data import Split
from normlab.device import Autocast, seed_everything
from normlab.errors import NormlabError
from normlab.evaluation import Evaluation
from normlab.loop import Fitted, check_batch, diverged, epoch_record
from normlab.models import Dropout, dropped, penalized
from normlab.norms import GroupNorm
from normlab.optim import make_optimizer, make_scheduler
from normlab.outputs import RAW
from normlab.prepare import Prepared, model_for, prepare, validate

Span = tuple[int, int]  # (first run, number of runs) a packed layer holds
FREE = ("norm", "groups", "l1", "l2", "seed")  # what packed runs may differ in
STATELESS = (nn.ReLU, nn.MaxPool2d, nn.Identity)


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)


def _dense(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )


class PackedDropout(nn.Module):
    """models.Dropout for len(generators) runs side by side, each run's mask from its own generator.

    On a CPU each run's mask is drawn exactly as models.Dropout draws it alone (models.dropped
    over that run's elements, in the memory order its map has alone), so the masks equal solo
    ones. Elsewhere each run draws Bernoulli(1 - p) from its own generator (torch's F.dropout,
    which solo runs use there, takes no generator): the same law, other numbers than alone.
    """

    def __init__(self, p: float, generators: Sequence[torch.Generator]):
        super().__init__()
        self.p = p
        self.generators = list(generators)

    def extra_repr(self) -> str:
        return f"p={self.p}, runs={len(self.generators)}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        runs = len(self.generators)
        if x.device.type != "cpu":
            mask = torch.empty_like(x)
            for part, generator in zip(mask.chunk(runs, 1), self.generators, strict=True):
                part.bernoulli_(1 - self.p, generator=generator)
            return x * mask * (1 / (1 - self.p))  # x·mask is exact: one rounding, as F.dropout
        shape = (x.shape[0], x.shape[1] // runs, *x.shape[2:])
        solo = torch.channels_last if _channels_last(x) else torch.contiguous_format
        layout = torch.empty(shape, device="meta", memory_format=solo).stride()
        n = math.prod(shape)
        scales = []
        for generator in self.generators:  # as models.Dropout.forward, per run
            scale = torch.full((n,), 1 / (1 - self.p), dtype=x.dtype)
            scale[dropped(n, self.p, generator)] = 0
            scales.append(scale.as_strided(shape, layout))
        return x * torch.cat(scales, 1)


class PackedLinear(nn.Linear):
    """`runs` linear layers side by side: N×(runs·in) → N×(runs·out), weight `runs` row blocks."""

    def __init__(self, runs: int, in_features: int, out_features: int, bias: bool, **factory):
        super().__init__(in_features, runs * out_features, bias, **factory)
        self.runs = runs

    def extra_repr(self) -> str:
        return f"runs={self.runs}, {super().extra_repr()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, runs = x.shape[0], self.runs
        weight = self.weight.view(runs, -1, self.in_features)
        y = torch.einsum("nki,koi->nko", x.reshape(n, runs, -1), weight).reshape(n, -1)
        return y if self.bias is None else y + self.bias


class Mixed(nn.Module):
    """One layer whose runs differ (bn beside gn, a conv with a bias beside one without): each
    stretch of equal runs is one packed layer acting on that stretch's channels."""

    def __init__(self, parts: Sequence[nn.Module], spans: Sequence[Span]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.spans = list(spans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layout = _channels_last(x) and not x.is_contiguous()
        width = x.shape[1] // sum(n for _, n in self.spans)
        chunks = x.split([n * width for _, n in self.spans], dim=1)
        outs = [part(_dense(c, layout)) for part, c in zip(self.parts, chunks, strict=True)]
        return _dense(torch.cat(outs, 1), layout)


@dataclass(frozen=True)
class Packed:
    """The wide model, and for each of its layers with state: the solo models' path to that
    layer, the packed layer and the runs it holds (what `unpack` copies back)."""

    net: nn.Module
    runs: int
    layers: tuple[tuple[str, nn.Module, Span], ...]

    def spans(self) -> dict[int, Span]:
        """id(parameter) → the runs it holds, block by block along dim 0."""
        return {
            id(p): span for _, layer, span in self.layers for p in layer.parameters(recurse=False)
        }


def _state(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]


def _signature(leaf: nn.Module) -> tuple:
    """Equal for layers that pack into one: same type, settings and tensor shapes."""
    return type(leaf), leaf.extra_repr(), tuple((n, tuple(t.shape)) for n, t in _state(leaf))


def _stretches(leaves: Sequence[nn.Module]) -> list[Span]:
    """Consecutive runs whose layers are equal in all but their numbers."""
    spans, first = [], 0
    for k in range(1, len(leaves) + 1):
        if k == len(leaves) or _signature(leaves[k]) != _signature(leaves[first]):
            spans.append((first, k - first))
            first = k
    return spans


def _wide(
    leaf: nn.Module, runs: int, generators: Sequence[torch.Generator], path: str
) -> nn.Module:
    """An empty (meta) layer holding `runs` copies of `leaf` side by side, in its dtype."""
    kind = type(leaf)
    meta = {"device": "meta", "dtype": next(leaf.parameters(), torch.empty(0)).dtype}
    if kind is nn.Conv2d:
        c = leaf
        return nn.Conv2d(
            runs * c.in_channels,
            runs * c.out_channels,
            c.kernel_size,
            c.stride,
            c.padding,
            c.dilation,
            runs * c.groups,
            c.bias is not None,
            c.padding_mode,
            **meta,
        )
    if kind is nn.BatchNorm2d:
        b = leaf
        return nn.BatchNorm2d(
            runs * b.num_features, b.eps, b.momentum, b.affine, b.track_running_stats, **meta
        )
    if kind in (GroupNorm, nn.GroupNorm):
        g = leaf
        return kind(runs * g.num_groups, runs * g.num_channels, g.eps, g.affine, **meta)
    if kind is nn.Linear:
        return PackedLinear(
            runs, leaf.in_features, leaf.out_features, leaf.bias is not None, **meta
        )
    if kind is Dropout:
        return PackedDropout(leaf.p, generators)
    if kind in STATELESS:
        return copy.deepcopy(leaf)
    allowed = "Conv2d, BatchNorm2d, GroupNorm, Linear, Dropout, ReLU, MaxPool2d, Identity"
    raise NormlabError(f"packed runs: layer '{path}' is a {kind.__name__} (allowed: {allowed})")


def _check_shapes(models: Sequence[nn.Module]) -> None:
    """Every run has the same modules by name and type, and state only in leaf layers."""
    first = dict(models[0].named_modules())
    for k, model in enumerate(models[1:], start=1):
        mine = dict(model.named_modules())
        if mine.keys() != first.keys():
            raise NormlabError(f"packed runs: run {k}'s network has other layers than run 0's")
        for path, module in mine.items():
            if any(True for _ in module.children()) and type(module) is not type(first[path]):
                raise NormlabError(f"packed runs: '{path}' differs between run 0 and run {k}")
    for model in models:
        for path, module in model.named_modules():
            if any(True for _ in module.children()) and _state(module):
                raise NormlabError(f"packed runs: '{path}' holds tensors of its own")


@torch.no_grad()
def pack(
    models: Sequence[nn.Module],
    generators: Sequence[torch.Generator],
    *,
    channels_last: bool = False,
) -> Packed:
    """The runs' models as one wide model on their device (theirs are left as they are).

    `generators[k]` draws run k's dropout masks. The wide layers are built on the meta device
    and filled from the solo ones, so packing draws nothing from any random generator.
    """
    if not models or len(generators) != len(models):
        raise NormlabError("packed runs: give one generator per model, and at least one model")
    if not any(True for _ in models[0].children()):
        raise NormlabError("packed runs: the model must be a network of layers, not one layer")
    _check_shapes(models)
    runs, net = len(models), copy.deepcopy(models[0])
    placed: list[tuple[str, nn.Module, Span]] = []
    for path, _ in list(models[0].named_modules()):
        if not path or any(True for _ in net.get_submodule(path).children()):
            continue
        leaves = [m.get_submodule(path) for m in models]
        spans = _stretches(leaves)
        parts = [_wide(leaves[a], n, generators[a : a + n], path) for a, n in spans]
        parent, _, name = path.rpartition(".")
        setattr(
            net.get_submodule(parent), name, parts[0] if len(parts) == 1 else Mixed(parts, spans)
        )
        placed += [(path, part, span) for part, span in zip(parts, spans, strict=True)]
    device = next(models[0].parameters()).device
    net.to_empty(device=device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    for path, part, (first, n) in placed:
        solos = [m.get_submodule(path) for m in models[first : first + n]]
        for name, t in _state(part):
            mine = [getattr(s, name) for s in solos]
            t.copy_(torch.cat(mine) if t.dim() else mine[0])
    net.train(models[0].training)
    stateful = tuple(entry for entry in placed if _state(entry[1]))
    return Packed(net, runs, stateful)


@torch.no_grad()
def unpack(packed: Packed, models: Sequence[nn.Module]) -> list[nn.Module]:
    """Copy each run's weights and buffers from the wide model into its solo model (the models
    `pack` was given, or equal ones); returns them."""
    if len(models) != packed.runs:
        raise NormlabError(f"packed runs: {len(models)} models to unpack {packed.runs} runs into")
    for path, layer, (first, n) in packed.layers:
        solos = [m.get_submodule(path) for m in models[first : first + n]]
        for name, t in _state(layer):
            pieces = t.chunk(n) if t.dim() else [t] * n
            for solo, piece in zip(solos, pieces, strict=True):
                getattr(solo, name).copy_(piece)
    return list(models)


def side_by_side(batches: Sequence[torch.Tensor], channels_last: bool) -> torch.Tensor:
    """The runs' N×C×H×W batches as one N×(K·C)×H×W input of the wide model."""
    return _dense(torch.cat(list(batches), 1), channels_last)


def per_run_logits(logits: torch.Tensor, runs: int) -> torch.Tensor:
    """N×(K·classes) logits of the wide model → N×K×classes, in float32 as loop computes them."""
    return logits.float().reshape(logits.shape[0], runs, -1)


@torch.inference_mode()
def evaluate_packed(
    packed: Packed,
    split: Split,
    batcher: Batcher,
    batch_size: int,
    autocast: Autocast,
    tta: bool = False,
) -> list[Evaluation]:
    """loop.evaluate for every packed run at once: each test batch goes to all runs."""
    net, runs = packed.net, packed.runs
    net.eval()
    losses, preds, confs = [], [], []
    for start in range(0, len(split.labels), batch_size):
        one = batcher(split.images[start : start + batch_size], train=False)
        x = side_by_side([one] * runs, batcher.channels_last)
        y = split.labels[start : start + batch_size, None].expand(-1, runs)
        with autocast():
            logits = per_run_logits(net(x), runs)
            if tta:
                logits = (logits + per_run_logits(net(x.flip(-1)), runs)) / 2
        losses.append(F.cross_entropy(logits.transpose(1, 2), y, reduction="none").sum(0))
        conf, pred = logits.softmax(-1).max(-1)
        preds.append(pred)
        confs.append(conf)
    pred, conf = torch.cat(preds), torch.cat(confs).float().cpu()
    n = len(split.labels)
    loss = (torch.stack(losses).sum(0) / n).tolist()
    acc = (100.0 * (pred == split.labels[:, None]).float().mean(0)).tolist()
    pred, conf = pred.t().contiguous().cpu(), conf.t().contiguous()  # a row per run
    return [Evaluation(loss[k], acc[k], pred[k], conf[k]) for k in range(runs)]


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
    """A function giving each run's L1 term (a K-vector) as loop.l1_term computes it alone:
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
        own = copy.copy(augment)  # shares nothing it changes: generator is a plain attribute
        own.generator = generator
        return own
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
) -> list[Fitted | NormlabError]:
    """loop.fit for K runs at once, packed: run k with its own model, l1, l2 and seed.

    Returns per run its Fitted, whose history has loop.epoch_record's keys (no feature-probe
    percentiles: the probe is per model and is left out here), or the NormlabError loop.fit
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
    sched = make_scheduler(
        opt,
        r.schedule,
        r.lr,
        r.epochs * steps,
        milestones=r.milestones,
        gamma=r.gamma,
        epoch_steps=steps,
    )
    l1_term = l1_per_run(packed, l1s, r.l1_form, r.l1_scope) if any(l1s) else None
    decay = _laid(packed, penalized(packed.net, r.l2_scope), l2s) if any(l2s) else []
    saved, seconds = [], 0.0
    if checkpoint is not None:
        saved, seconds = checkpoint.restore(packed.net, opt, sched, r.epochs)
    histories, failed = _replay(saved, runs, log)
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
        entries = _entries(
            models, Epoch(epoch, steps, r, l1s, l2s, sched.get_last_lr()[0]), epoch_stats, results
        )
        entries = [
            {"diverged": str(failed[k])} if k in failed else e for k, e in enumerate(entries)
        ]
        saved = [*saved, entries]
        _note(entries, histories, failed, log)
        if checkpoint is not None:
            checkpoint.save(packed.net, opt, sched, saved, seconds)
        _print_epoch(epoch, r.epochs, results, failed, seconds)
    unpack(packed, models)
    return [failed.get(k) or Fitted(histories[k], seconds) for k in range(runs)]


@dataclass(frozen=True)
class Epoch:
    """What an epoch's records share."""

    epoch: int
    steps: int
    recipe: Recipe
    l1: list[float]
    l2: list[float]
    lr: float


def _entries(
    models: Sequence[nn.Module],
    at: Epoch,
    epoch_stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    results: Sequence[Evaluation],
) -> list[dict]:
    """Per run its epoch record (loop.epoch_record on its unpacked model), or
    {"diverged": message} where loop.fit would have stopped with that error."""
    step_loss, step_total, hits = epoch_stats
    totals, losses = step_total.cpu(), step_loss.mean(0).tolist()
    acc = (100.0 * hits / (at.steps * at.recipe.batch_size)).tolist()
    entries = []
    for k, model in enumerate(models):
        bad = (~torch.isfinite(totals[:, k])).nonzero()
        if len(bad):  # the optimised loss, as loop.train_epoch checks it
            s = int(bad[0])
            entries.append({"diverged": str(diverged(at.epoch, s + 1, totals[s, k].item()))})
        elif not math.isfinite(results[k].loss):
            entries.append({"diverged": str(diverged(at.epoch, at.steps, results[k].loss))})
        else:
            entries.append(
                epoch_record(
                    model,
                    epoch=at.epoch,
                    l1=at.l1[k],
                    l2=at.l2[k],
                    recipe=at.recipe,
                    train_stats={"train/loss": losses[k], "train/acc": acc[k]},
                    test=results[k],
                    lr=at.lr,
                )
            )
    return entries


def _note(
    entries: Sequence[dict],
    histories: list[list[dict]],
    failed: dict[int, NormlabError],
    log: Callable[[int, dict], None] | None,
) -> None:
    """File one epoch's entries: records into the histories (and `log`), failures once."""
    for k, entry in enumerate(entries):
        if "diverged" in entry:
            failed.setdefault(k, NormlabError(entry["diverged"]))
        else:
            histories[k].append(entry)
            if log is not None:
                log(k, entry)


def _replay(
    saved: list[list[dict]], runs: int, log: Callable[[int, dict], None] | None
) -> tuple[list[list[dict]], dict[int, NormlabError]]:
    """The histories and failures of a resumed pack's earlier epochs."""
    histories: list[list[dict]] = [[] for _ in range(runs)]
    failed: dict[int, NormlabError] = {}
    for entries in saved:
        _note(entries, histories, failed, log)
    return histories, failed


def _print_epoch(
    epoch: int, epochs: int, results: Sequence[Evaluation], failed: dict, seconds: float
) -> None:
    acc = ["diverged" if k in failed else f"{e.acc:.2f}" for k, e in enumerate(results)]
    tqdm.write(f"epoch {epoch:3d}/{epochs}  test acc {' '.join(acc)}  {seconds:6.1f}s")


def pack_key(params: Params) -> str:
    """Runs with equal keys can train packed: everything but norm, groups, l1, l2 and seed."""
    return json.dumps(params.model_dump(exclude=set(FREE)), sort_keys=True)


@dataclass(frozen=True)
class PreparedPack:
    """Packed runs ready to train: the data, batcher and autocast they share (run 0's Prepared)
    and each run's model, built as prepare.prepare builds it."""

    prep: Prepared
    models: list[nn.Module]


def prepare_packed(runs: Sequence[Params], root: Path = RAW) -> PreparedPack:
    """Load the data once and build every run's model under its own seed, as prepare does
    (seed_everything, then model_for: loading data draws nothing in between)."""
    keys = {pack_key(p) for p in runs}
    if len(keys) != 1:
        raise NormlabError(
            f"packed runs: they must differ only in {', '.join(FREE)} ({len(keys)} kinds given)"
        )
    prep = prepare(runs[0], root)
    models = [prep.model]
    for params in runs[1:]:
        validate(params)
        seed_everything(params.seed)
        model = model_for(params).to(prep.device)
        if params.engine.channels_last:
            model = model.to(memory_format=torch.channels_last)
        models.append(model)
    return PreparedPack(prep, models)
