"""Bad params.yaml or recipes.yaml → one line naming the key, the value and what is allowed;
exit 2; no traceback; every existing output byte-identical.

Every case runs the real stage module (`stages.validate` as `__main__`, through `run_stage`) in
a copy of the repo, in this process: a traceback would fail the test. Three cases also run as a
separate process, as `dvc repro` does, to prove the same end to end: validate given a file that
is no YAML (config.load), validate given a param prepare.validate rejects, and train given
resolved params (model/params.json, what it reads) that prepare.validate rejects. More would
only repeat those code paths at ~2 s of interpreter start-up each.

Params are the committed params.yaml with the case's overrides, on MNIST (the messages name its
60000 training images and the cnn's layers), whatever dataset the workspace params name.
"""

import runpy

import pytest
import torch

from conftest import DELETE, MNIST, parse, run_stage, snapshot, write_params
from normlab.io import write_json

# (id, overrides of the committed params.yaml, text the one error line must contain)
CASES = [
    ("norm-unknown", {"norm": "bm"}, "norm = 'bm'"),
    ("norm-case", {"norm": "BN"}, "norm = 'BN'"),
    ("dataset-unknown", {"dataset": "imagenet"}, "dataset = 'imagenet'"),
    (
        "groups-3-conv1",
        {"norm": "gn", "groups": 3},
        "groups = 3 does not divide the 8 channels of layer 'C8 at token 1'",
    ),
    (
        "groups-16-conv1",
        {"norm": "gn", "groups": 16},
        "groups = 16 does not divide the 8 channels of layer 'C8 at token 1'",
    ),
    ("groups-0", {"norm": "gn", "groups": 0}, "groups = 0"),
    ("groups-negative", {"groups": -2}, "groups = -2"),
    ("groups-fraction", {"groups": 1.5}, "groups = 1.5"),
    ("l1-negative", {"l1": -0.001}, "l1 = -0.001"),
    ("l1-text", {"l1": "lots"}, "l1 = 'lots'"),
    ("l1-inf", {"l1": float("inf")}, "l1 = inf"),
    ("l2-negative", {"l2": -1}, "l2 = -1"),
    ("l2-text", {"l2": "some"}, "l2 = 'some'"),
    ("lr-negative", {"train.lr": -0.1}, "train.lr = -0.1"),
    ("lr-zero", {"train.lr": 0}, "train.lr = 0"),
    ("lr-text", {"train.lr": "fast"}, "train.lr = 'fast'"),
    ("lr-nan", {"train.lr": float("nan")}, "train.lr = nan"),
    ("recipe-lr-negative", {"recipes.mnist.lr": -1.0}, "recipes.yaml: mnist.lr = -1.0"),
    ("epochs-zero", {"train.epochs": 0}, "train.epochs = 0"),
    ("epochs-ten", {"train.epochs": "ten"}, "train.epochs = 'ten'"),
    ("epochs-bool", {"train.epochs": True}, "train.epochs = True"),
    ("batch-zero", {"train.batch_size": 0}, "train.batch_size = 0"),
    (
        "batch-over-limit",
        {"data.limit": 100, "train.batch_size": 128},
        "train.batch_size = 128: larger than the 100 training images",
    ),
    (
        "batch-over-dataset",
        {"train.batch_size": 70000},
        "train.batch_size = 70000: larger than the 60000",
    ),
    ("limit-negative", {"data.limit": -1}, "data.limit = -1"),
    ("limit-over-dataset", {"data.limit": 70000}, "data.limit = 70000: larger than the 60000"),
    ("val-negative", {"data.val": -1}, "data.val = -1"),
    ("val-text", {"data.val": "some"}, "data.val = 'some'"),
    ("val-whole-set", {"data.val": 60000}, "data.val = 60000: leaves none of the 60000"),
    (
        "limit-over-what-val-leaves",
        {"data.val": 10000, "data.limit": 55000},
        "data.limit = 55000: larger than the 50000 training images of mnist left after data.val",
    ),
    ("momentum-one", {"train.momentum": 1.0}, "train.momentum = 1.0"),
    ("dropout-over-one", {"train.dropout": 1.5}, "train.dropout = 1.5"),
    ("schedule-unknown", {"train.schedule": "linear"}, "train.schedule = 'linear'"),
    ("model-unknown", {"train.model": "vit"}, "train.model = 'vit'"),
    ("seed-negative", {"seed": -1}, "seed = -1"),
    ("seed-text", {"seed": "x"}, "seed = 'x'"),
    ("seed-huge", {"seed": 2**70}, f"seed = {2**70}: Input should be less than or equal to"),
    ("two-problems", {"norm": "bm", "l1": -1}, "norm = 'bm'"),
    ("crop-whole-image", {"train.crop": 28}, "train.crop = 28: the images are 28×28 pixels"),
    ("cutout-whole-image", {"train.cutout": 30}, "train.cutout = 30: the images are 28×28"),
    ("layout-too-wide", {"train.model": "C99999999999 GAP H"}, "a width must be 1 to 4096"),
    ("eval-batch-zero", {"engine.eval_batch_size": 0}, "engine.eval_batch_size = 0"),
    ("amp-unknown", {"engine.amp": "fp8"}, "engine.amp = 'fp8'"),
    ("typo-top-nrom", {"nrom": "gn"}, "unknown key 'nrom'"),
    ("typo-train-epoch", {"train.epoch": 3}, "unknown key 'train.epoch'"),
    ("typo-data-limt", {"data.limt": 10}, "unknown key 'data.limt'"),
    ("typo-engine", {"engine.fast": True}, "unknown key 'engine.fast'"),
    ("missing-norm", {"norm": DELETE}, "missing key 'norm'"),
    (
        "missing-recipe",
        {"dataset": "fashion-mnist", "recipes.fashion-mnist": DELETE},
        "recipes.yaml: missing key 'fashion-mnist'",
    ),
    (
        "recipes-in-params",
        {"recipes": {"mnist": {"lr": 0.2}}},
        "unknown key 'recipes': recipes are in recipes.yaml (edit them there, or override",
    ),
    ("device-unknown", {"device": "tpu"}, "device = 'tpu'"),
    ("device-cuda-absent", {"device": "cuda"}, "device = 'cuda': not available on this machine"),
]
NEEDS_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
RAW_CASES = [  # params.yaml text that is not even a valid mapping
    ("invalid-yaml", "norm: bn\n  groups: [4\n", "not valid YAML"),
    ("not-a-mapping", "- norm\n- bn\n", "expected a mapping"),
    ("empty-file", "", "expected a mapping"),
    (
        "key-twice",
        "norm: bn\nl1: 0\nnorm: gn\n",
        "line 3: not valid YAML (found the key 'norm' twice)",
    ),
]


@pytest.fixture
def outputs(repo):
    """`repo` with the outputs of an earlier good run in place (dummy bytes)."""
    for rel in (
        "model/params.json",
        "model/model.pt",
        "metrics/eval.json",
        "metrics/run.json",
        "dvclive/metrics.json",
        "plots/confusion.csv",
        "plots/confusion.png",
        "data/raw/mnist/train-images-idx3-ubyte.gz",
    ):
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"earlier good output {rel}\n".encode())
    return repo


def assert_one_line(stderr: str, expected: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("error: params.yaml", "error: recipes.yaml"))
    assert expected in lines[0]


def assert_rejected_in_process(repo, expected: str, monkeypatch, capsys) -> None:
    """`python -m stages.validate` minus the new interpreter: any traceback fails the test."""
    before = snapshot(repo)
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("stages.validate", run_name="__main__")
    assert exit_.value.code == 2
    assert_one_line(capsys.readouterr().err, expected)
    assert snapshot(repo) == before  # params.yaml, recipes.yaml included: nothing was rewritten


def assert_rejected_by_process(repo, stage: str, expected: str) -> None:
    before = snapshot(repo)
    result = run_stage(repo, stage, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert_one_line(result.stderr, expected)
    assert snapshot(repo) == before


@pytest.mark.parametrize(
    "overrides, expected",
    [
        pytest.param(overrides, expected, id=case, marks=[NEEDS_NO_CUDA] if "cuda" in case else [])
        for case, overrides, expected in CASES
    ],
)
def test_validate_rejects_bad_param(outputs, overrides, expected, monkeypatch, capsys):
    write_params(outputs, {**MNIST, **overrides})
    assert_rejected_in_process(outputs, expected, monkeypatch, capsys)


@pytest.mark.parametrize(
    "text, expected", [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_validate_rejects_malformed_params_file(outputs, text, expected, monkeypatch, capsys):
    (outputs / "params.yaml").write_text(text)
    assert_rejected_in_process(outputs, expected, monkeypatch, capsys)


def test_two_problems_are_one_line_that_counts_the_second(outputs, monkeypatch, capsys):
    write_params(outputs, {**MNIST, "norm": "bm", "l1": -1})
    assert_rejected_in_process(outputs, "(and 1 more problem)", monkeypatch, capsys)


def test_a_params_file_that_is_not_text_is_one_line(outputs, monkeypatch, capsys):
    (outputs / "params.yaml").write_bytes(b"\xff\xfe\x00norm")
    assert_rejected_in_process(outputs, "cannot be read as text", monkeypatch, capsys)


def test_validate_process_rejects_a_param_prepare_checks(outputs):
    overrides, expected = {c[0]: c[1:] for c in CASES}["batch-over-limit"]
    write_params(outputs, {**MNIST, **overrides})
    assert_rejected_by_process(outputs, "validate", expected)


def test_train_process_rejects_resolved_params_prepare_checks(outputs):
    """train reads model/params.json, not params.yaml: resolved params it cannot run (here
    written by hand: validate would not write them) stop it with the same line."""
    overrides, expected = {c[0]: c[1:] for c in CASES}["batch-over-limit"]
    write_params(outputs, MNIST)
    bad = parse({**MNIST, "train.batch_size": 128}).model_dump() | {"limit": 100}
    write_json(outputs / "model" / "params.json", bad)
    assert_rejected_by_process(outputs, "train", expected)


def test_validate_process_rejects_invalid_yaml(outputs):
    (outputs / "params.yaml").write_text(RAW_CASES[0][1])
    assert_rejected_by_process(outputs, "validate", RAW_CASES[0][2])


def test_validate_rejects_malformed_recipes_file(outputs, monkeypatch, capsys):
    write_params(outputs, MNIST)
    (outputs / "recipes.yaml").write_text("mnist: {lr: 0.1}\nmnist: {lr: 0.2}\n")
    assert_rejected_in_process(
        outputs,
        "recipes.yaml: line 2: not valid YAML (found the key 'mnist' twice)",
        monkeypatch,
        capsys,
    )


def test_good_params_pass_validate(outputs, monkeypatch):
    """Guards the cases above: the unmodified params are accepted and write model/params.json."""
    write_params(outputs, MNIST)
    monkeypatch.chdir(outputs)
    runpy.run_module("stages.validate", run_name="__main__")  # no SystemExit: it succeeded
    assert b'"norm": "bn"' in (outputs / "model/params.json").read_bytes()
