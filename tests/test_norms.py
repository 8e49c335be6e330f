"""The norm layers normalise over the axes they claim, and L1/L2 act only on conv/linear weights."""

import pytest
import torch
from torch import nn

from normlab.errors import NormlabError
from normlab.models import MnistNet, build, count_params
from normlab.norms import make_norm
from normlab.optim import l1_term, make_optimizer

N, C, H, W = 6, 8, 5, 4
EPS = 1e-5


def by_hand(x: torch.Tensor, groups_of: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Normalise `groups_of` (x reshaped so that `dims` are exactly the shared elements);
    biased var."""
    mean = groups_of.mean(dim=dims, keepdim=True)
    var = ((groups_of - mean) ** 2).mean(dim=dims, keepdim=True)
    return ((groups_of - mean) / torch.sqrt(var + EPS)).reshape(x.shape)


def expected(norm: str, x: torch.Tensor) -> torch.Tensor:
    if norm == "bn":  # each channel over (N, H, W)
        return by_hand(x, x, (0, 2, 3))
    if norm == "gn":  # each sample, each of 2 groups of C/2 channels, over (C/2, H, W)
        return by_hand(x, x.reshape(N, 2, C // 2, H, W), (2, 3, 4))
    if norm == "ln":  # each sample over (C, H, W)
        return by_hand(x, x, (1, 2, 3))
    if norm == "in":  # each sample and channel over (H, W)
        return by_hand(x, x, (2, 3))
    raise AssertionError(norm)


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in"])
def test_norm_matches_its_definition(norm):
    torch.manual_seed(0)
    x = torch.randn(N, C, H, W, dtype=torch.float64) * 3 + 1
    layer = make_norm(norm, C, 2, "conv1").double().train()
    with torch.no_grad():  # a random per-channel affine, applied after the normalisation
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.uniform_(-1.0, 1.0)
    scale, shift = layer.weight.view(1, C, 1, 1), layer.bias.view(1, C, 1, 1)
    torch.testing.assert_close(layer(x), expected(norm, x) * scale + shift)


@pytest.mark.parametrize("norm", ["gn", "ln", "in"])
def test_norm_on_channels_last_maps_matches_its_definition_and_keeps_the_layout(norm):
    """The CPU channels-last path of norms.GroupNorm: same values and gradients, same layout."""
    torch.manual_seed(0)
    x = (torch.randn(N, C, H, W, dtype=torch.float64) * 3 + 1).contiguous(
        memory_format=torch.channels_last
    )
    x.requires_grad_()
    layer = make_norm(norm, C, 2, "conv1").double()
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2.0)
        layer.bias.uniform_(-1.0, 1.0)
    out = layer(x)
    assert out.is_contiguous(memory_format=torch.channels_last)  # the next conv stays channels-last
    scale, shift = layer.weight.view(1, C, 1, 1), layer.bias.view(1, C, 1, 1)
    torch.testing.assert_close(out, expected(norm, x.detach()) * scale + shift)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, layer.weight, layer.bias], grad)
    x0 = x.detach().contiguous().requires_grad_()
    want = torch.autograd.grad(
        expected(norm, x0) * scale + shift, [x0, layer.weight, layer.bias], grad
    )
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in"])
def test_norms_differ_from_each_other(norm):
    """Guards the test above: the four hand computations really are four different things."""
    torch.manual_seed(1)
    x = torch.randn(N, C, H, W, dtype=torch.float64)
    others = [o for o in ("bn", "gn", "ln", "in") if o != norm]
    for other in others:
        assert not torch.allclose(expected(norm, x), expected(other, x))


def test_ln_is_groupnorm_with_one_group_and_2c_params():
    layer = make_norm("ln", C, 4, "conv1")
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == 1 and layer.num_channels == C
    assert sum(p.numel() for p in layer.parameters()) == 2 * C


def test_in_is_groupnorm_with_c_groups_and_none_is_identity():
    layer = make_norm("in", C, 4, "conv1")
    assert isinstance(layer, nn.GroupNorm) and layer.num_groups == C
    assert isinstance(make_norm("none", C, 4, "conv1"), nn.Identity)


@pytest.mark.parametrize("layout", ["cnn", "cnn-pad"])
@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in", "none"])
def test_mnist_net_is_under_10k_params_with_the_chosen_norm(norm, layout):
    model = build(layout, norm, 4, 0.05, 1, 10)
    assert count_params(model) < 10_000
    kind = {
        "bn": nn.BatchNorm2d,
        "gn": nn.GroupNorm,
        "ln": nn.GroupNorm,
        "in": nn.GroupNorm,
        "none": nn.Identity,
    }[norm]
    assert any(isinstance(m, kind) for m in model.modules())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("groups, layer", [(3, "conv1"), (16, "conv1"), (0, "conv1")])
def test_bad_groups_rejected_naming_the_layer(groups, layer):
    with pytest.raises(NormlabError, match=f"groups = {groups} .*layer '{layer}'"):
        build("cnn", "gn", groups, 0.0, 1, 10)


def test_groups_dividing_every_layer_are_accepted():
    for groups in (1, 2, 4, 8):
        build("cnn", "gn", groups, 0.0, 1, 10)


def _penalized_by_name(model: nn.Module) -> dict[str, nn.Parameter]:
    """Conv/linear weights found apart from normlab.models.penalized: by module type and name."""
    return {
        f"{mod_name}.weight": mod.weight
        for mod_name, mod in model.named_modules()
        if isinstance(mod, (nn.Conv2d, nn.Linear))
    }


def _model(norm: str = "bn") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        MnistNet(norm, groups=4, dropout=0.0), nn.Linear(10, 3)
    )  # a linear layer too
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


def test_padded_layout_has_the_same_weights_and_keeps_more_of_the_image():
    """cnn-pad differs from cnn only in padding and one pool: same parameter shapes, larger maps."""
    valid, padded = build("cnn", "bn", 4, 0.0, 1, 10), build("cnn-pad", "bn", 4, 0.0, 1, 10)
    assert [p.shape for p in valid.parameters()] == [p.shape for p in padded.parameters()]
    x = torch.zeros(2, 1, 28, 28)
    after_conv4 = [net.features[:6](x).shape[-1] for net in (valid, padded)]  # conv1 … conv4
    assert after_conv4 == [8, 14]
    assert [net.features(x).shape[-1] for net in (valid, padded)] == [8, 7]
