"""Packing K solo models into one wide model, and back: the layers of a packed run.

Run k owns channels [k·C, (k+1)·C) of every map and the k-th block along dim 0 of every
parameter and buffer (see normlab.packed.fit for why runs are packed and how they train).
A conv becomes a grouped conv (groups × K), BatchNorm2d(C) BatchNorm2d(K·C), GroupNorm(g, C)
GroupNorm(K·g, K·C), a linear layer K blocks; a layer whose runs differ is packed per stretch
of equal runs (`Mixed`). Packing draws no random numbers: wide layers are filled from the
solo ones, and `unpack` copies every tensor back exactly.
"""

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from normlab.config import Params
from normlab.data.augment import Batcher
from normlab.data.readers import Split
from normlab.errors import NormlabError
from normlab.nets.blocks import Dropout
from normlab.nets.norms import GroupNorm
from normlab.packed.wide import Mixed, PackedDropout, PackedLinear, Span, dense
from normlab.paths import RAW
from normlab.train.device import Autocast, seed_everything
from normlab.train.evaluation import Evaluation
from normlab.train.prepare import Prepared, model_for, prepare, validate

FREE = ("norm", "groups", "l1", "l2", "seed")  # what packed runs may differ in
STATELESS = (nn.ReLU, nn.MaxPool2d, nn.Identity)


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
    return dense(torch.cat(list(batches), 1), channels_last)


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
    if runs[0].val:  # packed fit scores the test set only; its best epoch would be the test's
        raise NormlabError(
            f"packed runs: data.val = {runs[0].val}: no validation split when packed "
            "(allowed: 0; train such runs one at a time)"
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
