"""Everything a stage derives from validated params: device, resident data, model, batcher.

Train and evaluate both start here, so they cannot disagree about normalisation statistics,
class names or the model they build.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import torch
from torch import nn

from normlab import data, models
from normlab.config import Params
from normlab.engine import Batcher, Run, check_batch, make_augment, pick_device, seed_everything
from normlab.errors import NormlabError

RAW = Path("data/raw")


@dataclass
class Experiment:
    device: torch.device
    train: data.Split
    test: data.Split
    classes: tuple[str, ...]
    model: nn.Module
    batcher: Batcher
    autocast: Callable[[], ContextManager]
    precision: str  # bf16 | float32: what autocast computes in


def precision(device: torch.device, amp: str) -> str:
    """`auto` → bf16 where the hardware computes it natively: CUDA, and CPUs whose oneDNN has
    bf16 kernels (AVX512-BF16 / AMX; there it cut a training step of the MNIST net by ~25 % on
    2 cores at unchanged accuracy); float32 elsewhere, where bf16 would be emulated and slower."""
    if amp == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return "bf16" if native else "float32"
    return "bf16" if amp == "bf16" else "float32"


def make_autocast(device: torch.device, dtype: str) -> Callable[[], ContextManager]:
    """bf16 autocast (torch's per-op policy: convs and matmuls in bf16, ops it lists as
    precision-sensitive in float32; the loss is computed in float32 by the engine), or none."""
    if dtype == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def run_for(params: Params) -> Run:
    """The plain training values engine.fit takes, from validated params."""
    r = params.recipe
    return Run(r.epochs, r.batch_size, r.lr, r.momentum, r.schedule, params.l1, params.l2, params.seed,
               params.engine.eval_batch_size, r.tta)


def model_for(params: Params, in_channels: int, classes: int) -> nn.Module:
    """Build the recipe's network; raises a one-line error for a `groups` that does not fit."""
    r = params.recipe
    return models.build(r.model, params.norm, params.groups, r.dropout, in_channels, classes)


def validate(params: Params) -> None:
    """The checks that need more than params.yaml: device present, sizes, groups per layer."""
    pick_device(params.device)
    spec = data.spec(params.dataset)
    if params.limit > spec.n_train:
        raise NormlabError(f"params.yaml: data.limit = {params.limit}: larger than the {spec.n_train} training "
                           f"images of {params.dataset} (allowed: 0 = all, or 1..{spec.n_train})")
    check_batch(params.recipe.batch_size, params.limit or spec.n_train)
    model_for(params, spec.channels, len(spec.classes))


def prepare(params: Params, root: Path = RAW) -> Experiment:
    """Validate, seed, pick the device, load the dataset onto it and build the model."""
    validate(params)
    device = pick_device(params.device)
    if params.engine.threads:
        torch.set_num_threads(params.engine.threads)
    seed_everything(params.seed)
    spec = data.spec(params.dataset)
    train, test = data.load(params.dataset, root / params.dataset, params.limit)
    train = data.Split(train.images.to(device), train.labels.to(device))
    test = data.Split(test.images.to(device), test.labels.to(device))
    model = model_for(params, train.images.shape[1], len(spec.classes)).to(device)
    if params.engine.channels_last:
        model = model.to(memory_format=torch.channels_last)
    r = params.recipe
    augment = make_augment(r.rotate, r.crop, r.flip, r.cutout, train.images.shape[-1])
    batcher = Batcher.fit(train.images, augment=augment, channels_last=params.engine.channels_last)
    dtype = precision(device, params.engine.amp)
    return Experiment(device, train, test, spec.classes, model, batcher, make_autocast(device, dtype), dtype)
