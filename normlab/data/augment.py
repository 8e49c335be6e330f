"""Batches from the resident dataset: normalisation and augmentation of whole batches on the device.

A per-sample DataLoader is the bottleneck for a 9k-parameter net, so images stay on the device
as uint8 and a batch is an index slice of one tensor, augmented as one tensor.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Batcher:
    """Turns index slices of a resident uint8 split into normalised, augmented float batches."""

    mean: torch.Tensor  # per channel, shape 1×C×1×1, in [0, 1] units
    std: torch.Tensor
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    channels_last: bool = False

    @classmethod
    def from_images(cls, images: torch.Tensor, **kwargs) -> "Batcher":
        """Normalisation statistics from the training images, per channel."""
        x = images.float().div_(255)
        return cls(
            x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True), **kwargs
        )

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float().div_(255)
        if train and self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@functools.lru_cache(maxsize=16)
def pixel_centres(
    h: int, w: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """The columns' and rows' centres in [-1, 1] (align_corners=False), shapes W and H×1.

    Cached: they depend on the image size only, and building them took ten small ops per batch,
    a sizeable part of a small batch's augmentation. Never written to (rotate only reads them).
    """
    with torch.inference_mode(False):  # a normal tensor, whichever mode the first call ran in
        cols = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
        rows = ((torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1)[:, None]
    return cols, rows


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image of `x` by its angle (radians, shape N×1×1) about the centre, bilinear,
    zero fill: the grid affine_grid would build (pixel centres in [-1, 1],
    align_corners=False), rotated by broadcasting, cheaper on a CPU than its batched matmul."""
    _, _, h, w = x.shape
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    cols, rows = pixel_centres(h, w, x.device, x.dtype)
    grid = torch.stack([cos * cols - sin * rows, sin * cols + cos * rows], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RandomRotation(nn.Module):
    """Rotate each image by its own uniform angle in ±`degrees` about the centre (`rotate`).

    Why not kornia's RandomRotation: it costs ~1 ms of host time per batch whatever the batch
    size (it draws its parameters on the CPU and builds them op by op), more than a whole GPU
    step of this net; here the angles are drawn on the device and the warp is a few
    elementwise ops + grid_sample, which torch.compile / CUDA graphs can capture.
    """

    def __init__(self, degrees: float):
        super().__init__()
        self.radians = math.radians(degrees)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        draw = torch.rand(x.shape[0], 1, 1, device=x.device)
        return rotate(x, (draw * 2 - 1) * self.radians)


class RandomCrop(nn.Module):
    """Shift each image by its own offset of up to ±`padding` pixels: zero-pad, then crop back to
    the image's size. On h×w images this is kornia's RandomCrop((h, w), padding=padding), draw
    for draw and pixel for pixel (tests/data/test_augment.py checks it): the recipes trained
    with that, and their numbers stay.

    Why not kornia's: it builds boxes, a transform matrix and its checks op by op for every
    batch, a fixed host cost that ruled a small batch's augmentation (docs/performance.md);
    here the same two draws, one pad and one gather.

    The draws are kornia's: float32 uniforms from torch's global generator on the CPU (where
    kornia's samplers stay unless the module is moved), first the columns' offsets, then the
    rows', each ⌊u · (2·padding + 1)⌋.
    """

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding

    def extra_repr(self) -> str:
        return f"padding={self.padding}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        p, span = self.padding, 2 * self.padding + 1
        left = (torch.rand(n, dtype=torch.float32) * span).floor().long().to(x.device)
        top = (torch.rand(n, dtype=torch.float32) * span).floor().long().to(x.device)
        # every h×w window of the padded images, as a view: N×C×span×span×h×w
        windows = F.pad(x, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)
        return windows[torch.arange(n, device=x.device), :, top, left]


class Jitter(nn.Module):
    """Brightness and contrast jitter of strength s, as torchvision's ColorJitter(s, s) (seed 003).

    Each image gets its own brightness factor b and contrast factor c, uniform in [1 - s, 1 + s],
    applied in a random order per image (torchvision's order is random too): brightness is x·b,
    contrast blends x with its mean grey level, c·x + (1 - c)·mean; each clamps to [0, 1].
    Drawn on the device, like RandomRotation.
    """

    GREY = (0.299, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength

    def _contrast(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        grey = (
            x
            if x.shape[1] == 1
            else torch.einsum("nchw,c->nhw", x, x.new_tensor(self.GREY)).unsqueeze(1)
        )
        return (c * x + (1 - c) * grey.mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], 1, 1, 1)
        b, c = (
            torch.empty(shape, device=x.device, dtype=x.dtype).uniform_(
                max(0.0, 1 - self.strength), 1 + self.strength
            )
            for _ in range(2)
        )
        brightness_first = torch.rand(shape, device=x.device) < 0.5
        bright = (x * b).clamp(0, 1)
        return torch.where(
            brightness_first, self._contrast(bright, c), (self._contrast(x, c) * b).clamp(0, 1)
        )


class SomeRandAugment(nn.Module):
    """kornia's RandAugment (2 operations at magnitude 9 of 30: torchvision's defaults) on each
    image with probability `share` (seed 004: a quarter).

    The whole batch is augmented and the chosen images kept, so no index is read back to the
    host. kornia draws the 2 operations once per batch (torchvision per image) and their
    magnitudes' signs per image. Grey images go through as 3 equal channels, since some of its
    colour operations need 3.
    """

    def __init__(self, share: float):
        super().__init__()
        from kornia.augmentation.auto import RandAugment  # kornia costs ~1 s to import

        self.share = share
        self.ops = RandAugment(n=2, m=9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.share
        grey = x.shape[1] == 1
        out = self.ops(x.expand(-1, 3, -1, -1) if grey else x)
        return torch.where(chosen, out.mean(dim=1, keepdim=True) if grey else out, x)


def make_augment(
    rotate: float,
    crop: int,
    flip: bool,
    cutout: int,
    size: int,
    jitter: float = 0.0,
    randaugment: float = 0.0,
) -> nn.Module | None:
    """The recipe's batch augmentation, or None: colour first (jitter, RandAugment), then crop,
    flip, rotation and cutout. Flip, cutout and RandAugment are kornia's ops; crop, rotation
    and jitter are normlab's own (see RandomCrop, RandomRotation)."""
    if flip or cutout:  # importing kornia costs ~0.5-1 s of start-up: only when used
        import kornia.augmentation as K

    ops: list[nn.Module] = []
    if jitter:
        ops.append(Jitter(jitter))
    if randaugment:
        ops.append(SomeRandAugment(randaugment))
    if crop:
        ops.append(RandomCrop(crop))
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if rotate:
        ops.append(RandomRotation(rotate))
    if cutout:
        area = cutout * cutout / (size * size)
        ops.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), p=1.0))
    return nn.Sequential(*ops) if ops else None
