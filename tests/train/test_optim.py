"""L1 and L2 act only on conv/linear weights: the penalty term, its gradient, and SGD's
weight decay (normlab.train.optim)."""

import pytest
import torch
from torch import nn

from conftest import cnn
from normlab.train.optim import l1_term, make_optimizer


def _penalized_by_name(model: nn.Module) -> dict[str, nn.Parameter]:
    """Conv/linear weights found apart from optim.penalized: by module type and name."""
    return {
        f"{mod_name}.weight": mod.weight
        for mod_name, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    }


def _model(norm: str = "bn") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(cnn(norm, groups=4, dropout=0.0), nn.Linear(10, 3))  # a linear layer too
    with torch.no_grad():  # nonzero norm affines and biases, so including them would show
        for name, p in model.named_parameters():
            if name not in _penalized_by_name(model):
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("norm", ["bn", "gn", "none"])
def test_l1_term_is_l1_times_abs_sum_of_conv_and_linear_weights_only(norm):
    model = _model(norm)
    weights = _penalized_by_name(model)
    l1 = 3e-4
    want = l1 * sum(float(w.detach().abs().sum()) for w in weights.values())
    term = l1_term(model, l1)
    assert float(term.detach()) == pytest.approx(want, rel=1e-6)
    term.backward()
    for name, p in model.named_parameters():
        if name in weights:
            torch.testing.assert_close(p.grad, l1 * torch.sign(p.detach()))
        else:  # norm affines and biases get no L1 gradient
            assert p.grad is None or not p.grad.any(), name


@pytest.mark.parametrize("norm", ["bn", "none"])
def test_l2_decays_exactly_the_conv_and_linear_weights(norm):
    model = _model(norm)
    weights = _penalized_by_name(model)
    lr, l2 = 0.1, 0.01
    opt = make_optimizer(model, lr, momentum=0.0, l2=l2)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == l2 for p in g["params"]}
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decay == {id(w) for w in weights.values()}
    assert no_decay == {id(p) for n, p in model.named_parameters() if n not in weights}

    # Behaviour: one SGD step with zero data gradient shrinks only the penalised weights, by lr·l2.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        factor = 1 - lr * l2 if name in weights else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)
