"""Everything a stage derives from validated params: device, resident data, model, batcher.

Train and evaluate both start here, so they cannot disagree about normalisation statistics,
class names or the model they build.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from normlab import data, models
from normlab.augment import Batcher, make_augment
from normlab.config import Params
from normlab.device import Autocast, make_autocast, pick_device, precision, seed_everything
from normlab.errors import NormlabError
from normlab.loop import check_batch
from normlab.outputs import RAW


@dataclass(frozen=True)
class Prepared:
    """A run ready to train or score: data on its device, the model, and how to batch."""

    device: torch.device
    train: data.Split
    test: data.Split
    classes: tuple[str, ...]
    model: nn.Module
    batcher: Batcher
    autocast: Autocast
    precision: str  # bf16 | float32: what autocast computes in


def model_for(params: Params, in_channels: int, classes: int) -> nn.Module:
    """Build the recipe's network; raises a one-line error for a `groups` that does not fit."""
    r = params.recipe
    return models.build(r.model, params.norm, params.groups, r.dropout, in_channels, classes)


def validate(params: Params) -> None:
    """The checks that need more than params.yaml: device present, sizes, groups per layer."""
    pick_device(params.device)
    spec = data.spec(params.dataset)
    if params.limit > spec.n_train:
        raise NormlabError(f"params.yaml: data.limit = {params.limit}: larger than the "
                           f"{spec.n_train} training images of {params.dataset} "
                           f"(allowed: 0 = all, or 1..{spec.n_train})")
    check_batch(params.recipe.batch_size, params.limit or spec.n_train)
    model_for(params, spec.channels, len(spec.classes))


def prepare(params: Params, root: Path = RAW) -> Prepared:
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
    batcher = Batcher.from_images(train.images, augment=augment,
                                  channels_last=params.engine.channels_last)
    dtype = precision(device, params.engine.amp)
    return Prepared(device, train, test, spec.classes, model, batcher,
                    make_autocast(device, dtype), dtype)
