"""The layout language builds normlab's cnn nets exactly, the seeds' nets at their published
sizes, and turns each bad layout into one line naming the token and why."""

import hashlib
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import cnn
from normlab.errors import NormlabError
from normlab.nets import layout
from normlab.nets.build import build as build_net
from normlab.nets.build import count_params
from normlab.train.features import last_norm

MNIST = {"in_channels": 1, "classes": 10, "size": 28}
CIFAR = {"in_channels": 3, "classes": 10, "size": 32}
SEED_004 = {**CIFAR, "order": "conv-norm-relu", "bias": True}
# layout, build arguments, GN groups, parameter count (the seeds' own summaries)
SEEDS = {
    "001": (layout.SEED_001, MNIST, 4, 7_288),
    "002": (layout.SEED_002, MNIST, 2, 7_614),
    "003": (layout.SEED_003, MNIST, 4, 9_680),
    "004": (layout.SEED_004, SEED_004, 4, 40_394),
}


def build(text: str, norm: str = "bn", groups: int = 4, **kwargs) -> nn.Module:
    return build_net(text, norm=norm, groups=groups, dropout=0.05, **{**MNIST, **kwargs})


@pytest.mark.parametrize("norm", ["bn", "gn", "ln"])
@pytest.mark.parametrize("seed", SEEDS)
def test_seed_nets_have_their_published_parameter_counts(seed, norm):
    text, kwargs, groups, count = SEEDS[seed]
    assert count_params(build(text, norm, groups, **kwargs)) == count


def test_seed_004_layers_come_in_its_notebooks_order():
    """Net_GN.ipynb's torchsummary, layer by layer: convs with bias, 1×1s without norm."""
    net = build(layout.SEED_004, "gn", **SEED_004)
    sizes: dict[str, int] = {}
    for name, p in net.named_parameters():
        owner = name.rsplit(".", 1)[0]
        sizes[owner] = sizes.get(owner, 0) + p.numel()
    stage = [2320, 32, 4640, 64, 9248, 544, 64]  # [C16p C32p c32p], its 1×1 skip, Norm
    assert list(sizes.values()) == [448, 32, 4640, 64, 528, *stage, 528, *stage, 330]


# The nets `model: cnn` and `cnn-pad` named before they were layouts (the MnistNet class, built
# after torch.manual_seed(3) with groups 4, dropout 0.05): a digest of their state dict (names,
# shapes, initial values), and the sum and absolute sum of their logits for torch.randn(3, 1,
# 28, 28) drawn right after. Recorded runs trained these nets; the layouts must stay them.
MNISTNET = {
    ("cnn", "bn"): ("5fb3edd02d4d1bf9", 0.014834314584732056, 3.336745262145996),
    ("cnn", "gn"): ("76e168a4cc1b9ab3", 1.0644440650939941, 5.099082946777344),
    ("cnn", "ln"): ("76e168a4cc1b9ab3", 1.6290535926818848, 4.6138153076171875),
    ("cnn", "none"): ("e80da06f5c403c80", 0.792082667350769, 2.4604604244232178),
    ("cnn-pad", "bn"): ("fad6d1d68c527de8", 0.01616254448890686, 3.3433992862701416),
    ("cnn-pad", "gn"): ("e8c76d8dfea05e7e", -2.7717158794403076, 6.677844047546387),
    ("cnn-pad", "ln"): ("e8c76d8dfea05e7e", -1.9643276929855347, 7.437680244445801),
    ("cnn-pad", "none"): ("e31b1cda4f4caac7", 0.8127008080482483, 2.4708802700042725),
}


def state_digest(net: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, value in net.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.parametrize("model, norm", MNISTNET)
def test_cnn_layouts_build_mnistnet_exactly(model, norm):
    """Same names, shapes, order and initial values, same logits: `cnn` is its layout."""
    torch.manual_seed(3)
    got = cnn(norm, 4, 0.05, model=model)
    assert got.layout == {"cnn": layout.CNN, "cnn-pad": layout.CNN_PAD}[model]
    digest, total, size = MNISTNET[model, norm]
    assert state_digest(got) == digest
    out = got.eval()(torch.randn(3, 1, 28, 28)).detach()
    assert float(out.sum()) == pytest.approx(total, rel=1e-4, abs=1e-5)
    assert float(out.abs().sum()) == pytest.approx(size, rel=1e-5)


def test_parsing_a_layout_loads_no_torch():
    """params validation parses layouts: it must not pay for importing torch."""
    code = "import sys, normlab.nets.layout, normlab.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("net", ["cnn", "cnn-pad", *SEEDS])
def test_forward_gives_one_row_of_logits_per_image(net):
    cnn = {"cnn": (layout.CNN, MNIST, 4, 0), "cnn-pad": (layout.CNN_PAD, MNIST, 4, 0)}
    text, kwargs, groups, _count = {**cnn, **SEEDS}[net]
    net = build(text, "gn", groups, **kwargs)
    x = torch.randn(2, kwargs["in_channels"], kwargs["size"], kwargs["size"])
    assert net(x).shape == (2, 10)


def test_parse_reads_widths_suffixes_and_residuals():
    tokens = layout.parse("C8p- T4 [C4p c4p]- P GAP h")
    assert [(t.kind, t.width, t.kernel, t.pad, t.dropout) for t in tokens] == [
        ("block", 8, 3, 1, False),
        ("block", 4, 1, 0, True),
        ("residual", 0, 3, 0, False),
        ("pool", 0, 3, 0, True),
        ("gap", 0, 3, 0, True),
        ("head", 0, 3, 0, True),
    ]
    assert [t.text for t in tokens[2].body] == ["C4p", "c4p"]
    assert tokens[2].text == "[C4p c4p]-" and tokens[-1].bias is False


def test_conv_norm_relu_runs_the_norm_before_the_relu():
    net = build("C4 GAP h", norm="ln", order="conv-norm-relu").eval()
    block = net.features[0]
    assert last_norm(net) is block[2]  # the probe still finds the norm
    x = torch.randn(2, 1, 28, 28)
    conv, _relu, norm, _dropout = block
    assert torch.equal(block(x), torch.relu(norm(conv(x))))
    assert (norm(conv(x)) < 0).any()  # so the two orders differ


def test_bias_knob_gives_every_conv_a_bias():
    plain, biased = build(layout.SEED_001), build(layout.SEED_001, bias=True)
    assert count_params(biased) - count_params(plain) == 8 + 8 + 8 + 16 + 16 + 16


def test_residual_adds_its_input_without_a_skip_conv_when_the_width_is_kept():
    net = build("C4p [C4p c4p] GAP h")
    residual = net.features[1]
    assert isinstance(residual[0].skip, nn.Identity)


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("C8 X3 GAP H", {}, "model: token 2 'X3': unknown token (allowed: C<w> (3×3 block)"),
        ("", {}, "model: '' is an empty layout"),
        ("C0 GAP H", {}, "model: token 1 'C0': a width must be 1 to 4096 channels"),
        ("C99999999999 GAP H", {}, "model: token 1 'C99999999999': a width must be 1 to 4096"),
        ("C\uff18 GAP H", {}, "model: token 1 'C\uff18': unknown token"),
        ("C8q GAP H", {}, "model: token 1 'C8q': suffix 'q' is not p (padded), - (no dropout)"),
        ("C8pp GAP H", {}, "model: token 1 'C8pp': suffix 'pp' is not p"),
        ("T8p GAP H", {}, "model: token 1 'T8p': a 1×1 conv has nothing to pad"),
        ("C8 c8- GAP H", {}, "model: token 2 'c8-': a bare conv has no dropout to leave out"),
        ("C8 C16", {}, "model: token 2 'C16': the layout must end with the head"),
        ("C8 H", {}, "model: token 2 'H': missing GAP before the head"),
        ("C8 H GAP H", {}, "model: token 2 'H': the head must be the last token"),
        ("C8 GAP C8 GAP H", {}, "model: token 2 'GAP': only the head may follow GAP"),
        ("c8 GAP H", {}, "model: no C, T or [ ] in the layout: the norm would act nowhere"),
        (
            "C8 [C8p [C8p]] GAP H",
            {},
            "model: token 4 '[': a residual inside the residual at token 2",
        ),
        ("C8 C8p] GAP H", {}, "model: token 3 ']': closes no '['"),
        ("C8 [ ] GAP H", {}, "model: token 2 '[': an empty residual"),
        ("C8 [C8p", {}, "model: token 2 '[': is never closed by ']'"),
        (
            "C8 [C8p P] GAP H",
            {},
            "model: token 4 'P': only C, T, c and t may sit inside the [ at token 2",
        ),
        ("C8 [C8p]p GAP H", {}, "model: token 4 ']p': only - (no dropout after the sum)"),
        (
            "C8 C12 GAP H",
            {"norm": "gn", "groups": 8},
            "params.yaml: groups = 8 does not divide the 12 channels of layer 'C12 at token 2'",
        ),
        (
            "C8 [C8p c12p] GAP H",
            {"norm": "gn", "groups": 8},
            "params.yaml: groups = 8 does not divide the 12 channels of layer "
            "'[C8p c12p] at token 2'",
        ),
        (
            "C8 P P P P C8 GAP H",
            {},
            "model: token 6 'C8': maps shrink below 1×1: an unpadded 3×3 conv needs a map "
            "of 3×3 or more, and the map here is 1×1 (pad it with p, or pool less)",
        ),
        ("C8p P P P P P GAP H", {}, "model: token 6 'P': maps shrink below 1×1: pooling the 1×1"),
        ("C8 [C8 c8p] GAP H", {}, "model: token 2 '[C8 c8p]': its layers take 26×26 maps to 24×24"),
        ("C8 GAP H", {"order": "norm-first"}, "order = 'norm-first': allowed conv-relu-norm, "),
    ],
)
def test_bad_layout_is_one_line_naming_the_token(text, kwargs, message):
    with pytest.raises(NormlabError) as caught:
        build(text, **kwargs)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
