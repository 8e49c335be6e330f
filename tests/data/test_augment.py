"""The hand-written batch rotation (augment.RandomRotation) does what RandomRotation promises,
the hand-written shifts (augment.RandomCrop) are kornia's exactly, and test-time flip
augmentation scores what it says."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from normlab.data.augment import Batcher, RandomCrop, RandomRotation, rotate
from normlab.data.readers import Split
from normlab.train.evaluation import evaluate


def centre_angle(x: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of each image's intensity centroid about the image centre."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij"
    )
    mass = x.sum(dim=(1, 2, 3))
    cy, cx = (x[:, 0] * ys).sum(dim=(1, 2)) / mass, (x[:, 0] * xs).sum(dim=(1, 2)) / mass
    return torch.rad2deg(torch.atan2(cy, cx))


def test_zero_degrees_is_identity():
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(RandomRotation(0)(x), x, atol=1e-5)


def test_each_image_turns_by_its_own_angle_within_the_range():
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 13:15, 22:25] = 1.0  # a blob right of centre: its centroid angle is ~0°
    torch.manual_seed(0)
    turned = centre_angle(RandomRotation(30)(x)) - centre_angle(x)
    assert turned.abs().max() <= 30 + 1.5  # bilinear sampling blurs the centroid a little
    assert turned.std() > 10  # per image, not one angle for the batch (uniform ±30°: std ≈ 17°)
    assert math.isclose(turned.mean().item(), 0.0, abs_tol=4.0)


def test_rotation_grid_is_the_one_built_per_batch():
    """rotate's pixel centres are cached: the grid must be the one built anew, bit for bit."""
    x, angle = torch.rand(3, 1, 28, 28), torch.tensor([0.1, -0.05, 0.12])[:, None, None]
    cos, sin = angle.cos(), angle.sin()
    cols = (torch.arange(28, dtype=torch.float32) * 2 + 1) / 28 - 1
    rows = ((torch.arange(28, dtype=torch.float32) * 2 + 1) / 28 - 1)[:, None]
    grid = torch.stack([cos * cols - sin * rows, sin * cols + cos * rows], -1)
    want = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    with torch.inference_mode():  # the cache's first use may be anywhere
        assert torch.equal(rotate(x, angle), want)
    assert torch.equal(rotate(x, angle), want)


@pytest.mark.parametrize(
    "batch,channels,padding", [(1, 1, 2), (2, 1, 2), (7, 3, 4), (64, 1, 2), (33, 3, 1)]
)
def test_random_crop_is_kornias_draw_for_draw_and_pixel_for_pixel(batch, channels, padding):
    """The recipe's shifts were kornia's RandomCrop: normlab's must give the same images from the
    same seed and leave torch's generator where kornia's left it (what follows draws alike)."""
    import kornia.augmentation as K

    x = torch.rand(batch, channels, 12, 12)
    theirs, ours = K.RandomCrop((12, 12), padding=padding), RandomCrop(padding)
    for seed in range(6):
        torch.manual_seed(seed)
        want, after = theirs(x), torch.rand(3)
        torch.manual_seed(seed)
        got = ours(x)
        assert torch.equal(got, want) and got.stride() == want.stride()
        assert torch.equal(torch.rand(3), after)


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.zeros(200, 1, 9, 9)
    x[:, :, 4, 4] = 1.0  # one bright pixel in the centre: where it lands is the shift
    torch.manual_seed(0)
    where = RandomCrop(2)(x)[:, 0].flatten(1).argmax(1)
    rows, cols = where // 9 - 4, where % 9 - 4
    assert rows.abs().max() == 2 and cols.abs().max() == 2  # ± padding, both ends reached
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 25  # each of 5 × 5


def test_tta_scores_each_image_by_the_mean_logits_of_it_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(6 * 6, 10)
    )  # not mirror-symmetric
    split = Split(
        torch.randint(0, 256, (300, 1, 6, 6), dtype=torch.uint8), torch.randint(0, 10, (300,))
    )
    batcher = Batcher.from_images(split.images)
    plain = evaluate(model, split, batcher, 128, contextlib.nullcontext)
    tta = evaluate(model, split, batcher, 128, contextlib.nullcontext, tta=True)

    x = batcher(split.images, train=False)
    with torch.no_grad():
        logits = (model(x) + model(x.flip(-1))) / 2
    assert torch.equal(tta.predictions, logits.argmax(1))
    assert math.isclose(tta.loss, F.cross_entropy(logits, split.labels).item(), rel_tol=1e-5)
    assert not torch.equal(plain.predictions, tta.predictions)  # so the two paths really differ
