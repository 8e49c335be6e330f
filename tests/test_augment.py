"""The hand-written batch rotation (engine.RandomRotation) does what RandomRotation promises."""

import math

import torch

from normlab.engine import RandomRotation


def centre_angle(x: torch.Tensor) -> torch.Tensor:
    """Angle (degrees) of each image's intensity centroid about the image centre."""
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
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
