"""The training step, bit for bit: loop.train_epoch against a plain epoch written here.

Speed work on the step (issue 30) must change no computed number. The reference below is the
MNIST recipe's step as it reads, with nothing made faster: kornia's RandomCrop for the shifts,
the rotation grid built anew each batch, dropout as normlab drew its masks before (one meta
tensor for the layout, every pass concatenated), torch's SGD and OneCycleLR stepped per batch,
the loss and hits read every step. Same seed, same initial weights: every weight, buffer and
the epoch's averages must be equal, not close.
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import parse, write_dataset
from normlab.nets.blocks import Dropout
from normlab.train.loop import train_epoch
from normlab.train.optim import make_optimizer, recipe_scheduler
from normlab.train.prepare import prepare


@pytest.fixture(autouse=True)
def one_thread():
    """The runs set engine.threads: 1, as studies on the shared 2-core machine do (two threads
    there made these steps ten times slower); torch's thread count is restored after."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


class PlainDropout(nn.Module):
    """normlab's CPU dropout as first written: the mask from geometric gaps, plainly."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n, p, ends, reach = x.numel(), self.p, [], 0
        while reach < n:
            left = n - reach
            u = torch.rand(int(left * p + math.sqrt(left * p)) + 16, dtype=torch.float64)
            gaps = u.neg_().log1p_().div_(math.log1p(-p)).floor_().add_(1).long()
            ends.append(gaps.cumsum_(0).add_(reach))
            reach = int(ends[-1][-1])
        ends = torch.cat(ends)
        index = ends[: int(torch.searchsorted(ends, n, right=True))] - 1
        scale = torch.full((n,), 1 / (1 - p), dtype=x.dtype)
        scale[index] = 0
        layout = torch.empty_like(x, device="meta").stride()
        return x * scale.as_strided(x.shape, layout)


def plain_rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Each image turned by its own uniform angle in ±degrees, the grid built for this batch."""
    _, _, h, w = x.shape
    angle = (torch.rand(x.shape[0], 1, 1) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    cols = (torch.arange(w, dtype=x.dtype) * 2 + 1) / w - 1
    rows = ((torch.arange(h, dtype=x.dtype) * 2 + 1) / h - 1)[:, None]
    grid = torch.stack([cos * cols - sin * rows, sin * cols + cos * rows], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def plain_epoch(model: nn.Module, images, labels, recipe, bf16: bool, channels_last: bool):
    """One epoch of the recipe's training, written out; returns (mean loss, accuracy %)."""
    import kornia.augmentation as K

    r, n, b = recipe, len(labels), recipe.batch_size
    steps = n // b
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=r.lr, total_steps=r.epochs * steps, pct_start=0.25
    )
    crop = K.RandomCrop((28, 28), padding=r.crop)
    whole = images.float().div(255)
    mean, std = whole.mean(dim=(0, 2, 3), keepdim=True), whole.std(dim=(0, 2, 3), keepdim=True)
    model.train()
    perm = torch.randperm(n)
    losses, hits = [], 0
    for step in range(steps):
        idx = perm[step * b : (step + 1) * b]
        x = plain_rotate(crop(images[idx].float().div(255)), r.rotate)
        x = (x - mean) / std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
        hits += int((logits.argmax(1) == labels[idx]).sum())
    return torch.stack(losses).mean().item(), 100.0 * hits / (steps * b)


def plain_copy(model: nn.Module) -> nn.Module:
    """`model` with every normlab Dropout swapped for PlainDropout, same weights."""
    twin = copy.deepcopy(model)
    for parent in twin.modules():
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, PlainDropout(child.p))
    return twin


@pytest.mark.parametrize("norm,batch", [("bn", 2), ("gn", 2), ("bn", 8)])
def test_train_epoch_is_the_plain_epoch_bit_for_bit(tmp_path, norm, batch):
    write_dataset(tmp_path / "mnist", n_train=48, n_test=10)
    params = parse(
        {
            "dataset": "mnist",
            "device": "cpu",
            "norm": norm,
            "train.batch_size": batch,
            "engine.threads": 1,
        }
    )
    r = params.recipe
    assert r.crop and r.rotate and r.dropout and r.schedule == "onecycle"  # what is compared
    prep = prepare(params, tmp_path)
    plain = plain_copy(prep.model)
    steps = len(prep.train.labels) // batch
    opt = make_optimizer(prep.model, r.lr, r.momentum, params.l2, nesterov=r.nesterov)
    sched = recipe_scheduler(opt, r, steps)
    torch.manual_seed(7)
    got = train_epoch(
        prep.model,
        opt,
        sched,
        prep.train,
        prep.batcher,
        batch_size=batch,
        l1=0.0,
        autocast=prep.autocast,
        epoch=1,
        progress=lambda n: None,
    )
    torch.manual_seed(7)
    images, labels = prep.train.images, prep.train.labels
    bf16 = prep.precision == "bf16"
    loss, acc = plain_epoch(plain, images, labels, r, bf16, params.engine.channels_last)
    assert got == {"train/loss": loss, "train/acc": acc}
    want = plain.state_dict()
    for key, value in prep.model.state_dict().items():
        assert torch.equal(value, want[key]), key
