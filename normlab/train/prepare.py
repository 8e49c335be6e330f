"""Everything a stage derives from validated params: device, resident data, model, batcher.

Train and evaluate both start here, so they cannot disagree about normalisation statistics,
class names or the model they build.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from normlab.config import Params, check_batch
from normlab.data import readers, specs
from normlab.data.augment import Batcher, make_augment
from normlab.errors import InputError
from normlab.nets import build
from normlab.paths import RAW
from normlab.train.device import Autocast, make_autocast, pick_device, precision, seed_everything


@dataclass(frozen=True)
class Prepared:
    """A run ready to train or score: data on its device, the model, and how to batch."""

    device: torch.device
    train: readers.Split
    test: readers.Split
    val: readers.Split | None  # the held-out training images (data.val), or None
    classes: tuple[str, ...]
    model: nn.Module
    batcher: Batcher
    autocast: Autocast
    precision: str  # bf16 | float32: what autocast computes in


def model_for(params: Params) -> nn.Module:
    """Build the recipe's network for the dataset's images (normlab.nets.build).

    Raises a one-line error for a `groups` that does not fit, or a layout its input cannot take
    (maps shrinking below 1×1), naming the params key that set it.
    """
    r, spec = params.recipe, specs.spec(params.dataset)
    try:
        return build.build(
            r.model,
            norm=params.norm,
            groups=params.groups,
            dropout=r.dropout,
            in_channels=spec.channels,
            classes=len(spec.classes),
            size=spec.size,
            order=r.order,
            bias=r.bias,
        )
    except InputError as err:
        if err.where != "model":  # a groups error names its key and layer already
            raise
        raise InputError("params.yaml", f"train.model = {r.model!r}: {err.detail}") from None


def validate(params: Params) -> torch.device:
    """The checks that need more than params.yaml: device present, sizes, groups per layer.
    Returns the device it found, so that `prepare` asks for it once."""
    device = pick_device(params.device)
    check_fits(params)
    return device


def check_fits(params: Params) -> None:
    """validate's checks that hold on any machine: sizes against the dataset, the model builds."""
    spec = specs.spec(params.dataset)
    if params.val >= spec.n_train:
        raise InputError(
            "params.yaml",
            f"data.val = {params.val}: leaves none of the {spec.n_train} training images of "
            f"{params.dataset} to train on (allowed: 0 = no validation split, or "
            f"1..{spec.n_train - 1})",
        )
    left = spec.n_train - params.val
    if params.limit > left:
        after = f" left after data.val = {params.val}" if params.val else ""
        raise InputError(
            "params.yaml",
            f"data.limit = {params.limit}: larger than the {left} training images of "
            f"{params.dataset}{after} (allowed: 0 = all, or 1..{left})",
        )
    check_batch(params.recipe.batch_size, params.limit or left)
    for key in ("crop", "cutout"):  # a shift or a square as large as the image leaves no image
        value = getattr(params.recipe, key)
        if value >= spec.size:
            raise InputError(
                "params.yaml",
                f"train.{key} = {value}: the images are {spec.size}×{spec.size} "
                f"pixels (allowed: 0 = off, or 1..{spec.size - 1})",
            )
    model_for(params)


def prepare(params: Params, root: Path = RAW) -> Prepared:
    """Validate, seed, pick the device, load the dataset onto it and build the model."""
    device = validate(params)
    if params.engine.threads:
        torch.set_num_threads(params.engine.threads)
    seed_everything(params.seed)
    spec = specs.spec(params.dataset)
    train, test, val = readers.load(params.dataset, root / params.dataset, params.limit, params.val)
    train, test = train.to(device), test.to(device)
    val = val.to(device) if val is not None else None
    model = model_for(params).to(device)
    if params.engine.channels_last:
        model = model.to(memory_format=torch.channels_last)
    r = params.recipe
    augment = make_augment(
        r.rotate,
        r.crop,
        r.flip,
        r.cutout,
        train.images.shape[-1],
        jitter=r.jitter,
        randaugment=r.randaugment,
    )
    batcher = Batcher.from_images(
        train.images, augment=augment, channels_last=params.engine.channels_last
    )
    dtype = precision(device, params.engine.amp)
    return Prepared(
        device, train, test, val, spec.classes, model, batcher, make_autocast(device, dtype), dtype
    )
