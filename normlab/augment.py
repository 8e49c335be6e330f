"""Batches from the resident dataset: normalisation and augmentation of whole batches on the device.

A per-sample DataLoader is the bottleneck for a 9k-parameter net, so images stay on the device
as uint8 and a batch is an index slice of one tensor, augmented as one tensor.
"""

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
        return cls(x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True),
                   **kwargs)

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float().div_(255)
        if train and self.augment is not None:
            x = self.augment(x)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class RandomRotation(nn.Module):
    """Rotate each image by its own uniform angle in ±`degrees` about the centre (bilinear, zero fill).

    Why not kornia's RandomRotation: it costs ~1 ms of host time per batch whatever the batch
    size (it draws its parameters on the CPU and builds them op by op), more than a whole GPU
    step of this net; here the angles are drawn on the device and the warp is a few
    elementwise ops + grid_sample, which torch.compile / CUDA graphs can capture.
    """

    def __init__(self, degrees: float):
        super().__init__()
        self.radians = math.radians(degrees)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        angle = (torch.rand(n, 1, 1, device=x.device) * 2 - 1) * self.radians
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        # The sampling grid affine_grid would build (pixel centres in [-1, 1], align_corners=False),
        # rotated by broadcasting: cheaper on a CPU than affine_grid's batched matmul.
        cols = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
        rows = ((torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1)[:, None]
        grid = torch.stack([cos * cols - sin * rows, sin * cols + cos * rows], -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_augment(rotate: float, crop: int, flip: bool, cutout: int, size: int) -> nn.Module | None:
    """The recipe's batch augmentation, or None: crop, flip and cutout are kornia's ops,
    rotation is normlab's own (see RandomRotation)."""
    if crop or flip or cutout:  # importing kornia costs ~0.5-1 s of start-up: only when used
        import kornia.augmentation as K

    ops: list[nn.Module] = []
    if crop:
        ops.append(K.RandomCrop((size, size), padding=crop))
    if flip:
        ops.append(K.RandomHorizontalFlip())
    if rotate:
        ops.append(RandomRotation(rotate))
    if cutout:
        area = cutout * cutout / (size * size)
        ops.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), p=1.0))
    return nn.Sequential(*ops) if ops else None
