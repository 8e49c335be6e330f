"""One real run of the user interface: `dvc repro` (the session's shared `pipeline` run), then
`dvc exp run -S norm=ln`, `dvc metrics diff`, `dvc plots show`, `dvc exp show`, in a temp git
repo holding the tracked files of this one."""

import json
import shutil

import pytest
import yaml

from conftest import PIPELINE_RUN, TEMPLATE, sh

pytestmark = pytest.mark.e2e


def flatten(nested: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} → {'a.b': 1}: `dvc metrics diff --json` nests metric names by dots."""
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_repro_writes_every_output_and_leaves_nothing_to_do(pipeline):
    metrics = json.loads((pipeline / "metrics/eval.json").read_text())
    assert 0 <= metrics["test"]["acc"] <= 100 and metrics["test"]["loss"] > 0
    epochs = PIPELINE_RUN["train.epochs"]
    assert metrics["final"]["epoch"] == epochs and 1 <= metrics["best"]["epoch"] <= epochs
    assert 0 < metrics["params"] < 10_000 and len(metrics["per_class_acc"]) == 10
    run = json.loads((pipeline / "metrics/run.json").read_text())
    assert run["device"] == "cpu" and run["seconds"] > 0
    assert run["precision"] in ("bf16", "float32")
    for rel in (
        "model/model.pt",
        "model/params.json",
        "dvc.lock",
        "plots/confusion.csv",
        "plots/confusion.png",
        "plots/misclassified.png",
        "dvclive/plots/metrics/test/acc.tsv",
        "data/raw/mnist/train-images-idx3-ubyte.gz",
    ):
        assert (pipeline / rel).is_file(), rel
    assert (pipeline / "plots/confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "up to date" in sh(pipeline, "dvc", "status")


def test_ln_experiment_then_metrics_diff_plots_and_exp_show(pipeline, tmp_path):
    # The offline plots template (and .dvc/config.local naming it) come from `make install`.
    assert TEMPLATE.is_file(), f"run `make install` (or `make test`) first: {TEMPLATE} is missing"
    repo = shutil.copytree(pipeline, tmp_path / "repo", symlinks=True)  # the shared run stays
    baseline = json.loads((repo / "metrics/eval.json").read_text())

    sh(repo, "dvc", "exp", "run", "-S", "norm=ln")
    assert "norm: ln" in (repo / "params.yaml").read_text()
    assert json.loads((repo / "model/params.json").read_text())["norm"] == "ln"

    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json"))
    changes = flatten((diff["diff"] if "diff" in diff else diff)["metrics/eval.json"])
    assert changes["test.acc.old"] == baseline["test"]["acc"]
    ln = json.loads((repo / "metrics/eval.json").read_text())
    assert changes["test.acc.new"] == ln["test"]["acc"]
    assert "params.old" not in changes  # BN and LN have the same parameter count...
    assert changes["test.loss.old"] != changes["test.loss.new"]  # ...but train differently

    out = tmp_path / "plots-html"
    sh(repo, "dvc", "plots", "show", "--out", str(out))
    html = (out / "index.html").read_text()
    for name in (
        "loss per epoch",
        "accuracy per epoch",
        "plots/confusion.csv",
        "plots/confusion.png",
        "plots/misclassified.png",
    ):
        assert name in html, name

    rows = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    variants = [_exp_params(exp) for row in rows for exp in [row, *_children(row)]]
    norms = [p.get("norm") for p in variants if p]
    assert "ln" in norms and "bn" in norms, norms


def _children(row: dict) -> list[dict]:
    return [exp for branch in row.get("experiments") or [] for exp in branch.get("revs", [])]


def _exp_params(exp: dict) -> dict:
    data = exp.get("data") or {}
    return (data.get("params") or {}).get("params.yaml", {}).get("data", {})


def test_another_datasets_recipe_leaves_train_and_evaluate_as_they_are(pipeline, tmp_path):
    """recipes.yaml is validate's dependency, not a params file of train and evaluate: editing
    the CIFAR-10 recipe re-runs nothing but the cheap validate, whose MNIST output is unchanged;
    and `dvc exp show` lists the recipe the run resolved, not every dataset's."""
    repo = shutil.copytree(pipeline, tmp_path / "repo", symlinks=True)  # the shared run stays
    recipes = yaml.safe_load((repo / "recipes.yaml").read_text())
    recipes["cifar10"]["lr"] = 0.3
    (repo / "recipes.yaml").write_text(yaml.safe_dump(recipes))
    status = json.loads(sh(repo, "dvc", "status", "--json"))
    assert set(status) == {"validate"}, status
    sh(repo, "dvc", "repro")
    assert json.loads(sh(repo, "dvc", "status", "--json")) == {}
    columns = sh(repo, "dvc", "exp", "show", "--csv").splitlines()[0].split(",")
    assert not [c for c in columns if c.startswith(("recipes.mnist", "recipes.cifar10"))], columns
    assert "recipe.lr" in columns and "recipes.yaml" in columns
