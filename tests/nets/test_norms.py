"""The norm layers normalise over the axes they claim, and the MNIST nets take any of them."""

import pytest
import torch
from torch import nn

from conftest import cnn
from normlab.errors import NormlabError
from normlab.nets.build import count_params
from normlab.nets.norms import make_norm

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
    model = cnn(norm, 4, 0.05, model=layout)
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


@pytest.mark.parametrize(
    "groups, layer", [(3, "C8 at token 1"), (16, "C8 at token 1"), (0, "C8 at token 1")]
)
def test_bad_groups_rejected_naming_the_layer(groups, layer):
    with pytest.raises(NormlabError, match=f"groups = {groups} .*layer '{layer}'"):
        cnn("gn", groups)


def test_groups_dividing_every_layer_are_accepted():
    for groups in (1, 2, 4, 8):
        cnn("gn", groups)


def test_padded_layout_has_the_same_weights_and_keeps_more_of_the_image():
    """cnn-pad differs from cnn only in padding and one pool: same parameter shapes, larger maps."""
    valid, padded = cnn("bn"), cnn("bn", model="cnn-pad")
    assert [p.shape for p in valid.parameters()] == [p.shape for p in padded.parameters()]
    x = torch.zeros(2, 1, 28, 28)
    after_conv4 = [net.features[:6](x).shape[-1] for net in (valid, padded)]  # conv1 … conv4
    assert after_conv4 == [8, 14]
    assert [net.features(x).shape[-1] for net in (valid, padded)] == [8, 7]
