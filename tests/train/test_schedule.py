"""The learning-rate schedule: a valid one-cycle for every run length, the standard one for
real runs."""

import pytest
import torch

from normlab.train.optim import make_scheduler


def lrs(schedule: str, total: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = make_scheduler(opt, schedule, 0.1, total)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("total", range(1, 13))
def test_onecycle_works_for_smoke_runs_of_any_length(total):
    values = lrs("onecycle", total)
    assert len(values) == total and all(0 < v <= 0.1 + 1e-12 for v in values)


def test_onecycle_of_a_real_run_warms_up_over_the_first_quarter():
    values = lrs("onecycle", 400)
    assert values[0] == pytest.approx(0.1 / 25)
    assert max(range(400), key=values.__getitem__) == 99  # peak at 25 % of the steps
    assert values[-1] < 1e-3


def test_constant_and_cosine():
    assert set(lrs("constant", 5)) == {0.1}
    cosine = lrs("cosine", 10)
    assert cosine[0] == pytest.approx(0.1) and cosine == sorted(cosine, reverse=True)
