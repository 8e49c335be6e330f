"""blocks.Dropout draws its CPU mask by geometric gaps: it must still be dropout, exactly."""

import math

import pytest
import torch

from normlab.nets.blocks import Dropout, dropped


def sigma_bound(n: int, p: float) -> float:
    """Five standard deviations of the dropped fraction of n Bernoulli(p) elements."""
    return 5 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_each_position_is_dropped_with_probability_p_independently(p):
    torch.manual_seed(0)
    n, calls = 40, 4000
    masks = torch.zeros(calls, n)
    for i in range(calls):
        masks[i, dropped(n, p)] = 1
    rate = masks.mean(
        0
    )  # per position: the first and the last alike (a second pass joins correctly)
    assert (rate - p).abs().max() < sigma_bound(calls, p)
    both = (masks[:, :-1] * masks[:, 1:]).mean()  # neighbours: independent, so p² together
    assert abs(both - p * p) < sigma_bound(calls * (n - 1), p * p)


def test_indices_are_sorted_unique_and_in_range():
    torch.manual_seed(1)
    # 100k elements at p = 0.2: about one call in ten needs a second pass of draws
    for n in [1, 7, 1000] + [100_003] * 40:
        idx = dropped(n, 0.2)
        assert idx.dtype == torch.int64 and len(idx.unique()) == len(idx)
        assert torch.equal(idx, idx.sort().values)
        assert len(idx) == 0 or (idx.min() >= 0 and idx.max() < n)


def test_large_tensor_drop_rate_scale_and_gradient():
    torch.manual_seed(2)
    x = (
        (torch.rand(64, 8, 26, 26) + 1)
        .contiguous(memory_format=torch.channels_last)
        .requires_grad_()
    )
    y = Dropout(0.05)(x)
    zero = y == 0
    assert abs(zero.float().mean().item() - 0.05) < sigma_bound(x.numel(), 0.05)
    assert torch.allclose(y[~zero], x[~zero] / 0.95)  # survivors scaled by 1/(1-p)
    assert y.is_contiguous(memory_format=torch.channels_last)  # the layout the next conv wants
    y.sum().backward()
    assert torch.allclose(x.grad, (~zero).float() / 0.95)


def test_eval_mode_and_p_zero_pass_through_and_seed_repeats():
    x = torch.rand(4, 3, 5, 5)
    d = Dropout(0.5)
    assert d.eval()(x) is x and Dropout(0.0)(x) is x
    d.train()
    torch.manual_seed(3)
    first = d(x)
    torch.manual_seed(3)
    assert torch.equal(first, d(x))


def plain_dropped(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """`dropped` as first written (1-based ends, concatenated, shifted at the end)."""
    ends, reach = [], 0
    while reach < n:
        left = n - reach
        u = torch.rand(
            int(left * p + math.sqrt(left * p)) + 16, dtype=torch.float64, generator=generator
        )
        gaps = u.neg_().log1p_().div_(math.log1p(-p)).floor_().add_(1).long()
        ends.append(gaps.cumsum_(0).add_(reach))
        reach = int(ends[-1][-1])
    ends = torch.cat(ends)
    return ends[: int(torch.searchsorted(ends, n, right=True))] - 1


@pytest.mark.parametrize("p", [1e-3, 0.05, 0.2, 0.5, 0.95])
def test_dropped_draws_what_it_first_drew(p):
    """Made cheaper (issue 30), `dropped` must pick the same elements from the same draws,
    second passes included (n = 100,003 at p = 0.2 needs one about every tenth call)."""
    for n in (1, 2, 17, 10_816, 100_003):
        for seed in range(4 if n < 100_003 else 12):
            ours, plain = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
            assert torch.equal(dropped(n, p, ours), plain_dropped(n, p, plain))
            assert torch.equal(torch.rand(2, generator=ours), torch.rand(2, generator=plain))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_the_mask_lies_as_torch_would_lay_out_a_tensor_like_x(layout):
    """The scale's strides are empty_like(x)'s: x's own when x is dense, torch's choice else."""
    base = torch.rand(2, 6, 5, 5)
    x = {
        "contiguous": base,
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "strided": base[:, ::2],  # not dense: empty_like lays it out afresh
    }[layout]
    torch.manual_seed(4)
    y = Dropout(0.3)(x)
    torch.manual_seed(4)
    idx = dropped(x.numel(), 0.3)
    scale = torch.full((x.numel(),), 1 / 0.7)
    scale[idx] = 0
    want = x * scale.as_strided(x.shape, torch.empty_like(x, device="meta").stride())
    assert torch.equal(y, want)
