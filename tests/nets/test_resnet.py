"""The CIFAR-10 net (normlab.nets.resnet): under 50k parameters with every norm, `groups`
reaching each of its norm layers, and a `groups` that does not fit naming the layer."""

import pytest
import torch

from conftest import parse
from normlab.errors import NormlabError
from normlab.nets.build import count_params
from normlab.nets.resnet import ResNet
from normlab.train.prepare import validate


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in", "none"])
def test_resnet_under_50k_params_for_every_norm(norm):
    model = ResNet(norm, 8, 0.1, in_channels=3, classes=10)
    n = count_params(model)
    assert 40_000 < n < 50_000
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("groups", [1, 2, 4, 8, 16])
def test_resnet_groups_reach_every_norm_layer(groups):
    model = ResNet("gn", groups, 0.0, in_channels=3, classes=10)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(layers) == 7 and all(m.num_groups == groups for m in layers)


def test_resnet_groups_that_do_not_divide_a_layer_name_it():
    with pytest.raises(
        NormlabError, match=r"groups = 3 does not divide the 32 channels of layer 'stem'"
    ):
        ResNet("gn", 3, 0.0, in_channels=3, classes=10)
    with pytest.raises(
        NormlabError, match=r"groups = 32 does not divide the 112 channels of layer 'stage2.down'"
    ):
        validate(parse({"dataset": "cifar10", "norm": "gn", "groups": 32, "device": "cpu"}))
