"""One real run of the user interface: `dvc repro`, `dvc exp run -S norm=ln`, `dvc metrics diff`,
`dvc plots show`, `dvc exp show`, in a temp git repo holding the tracked files of this one."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import TEMPLATE, git_repo_copy, stage_env

pytestmark = pytest.mark.e2e
QUICK = {"data.limit": 1000, "train.epochs": 1}


def sh(cwd: Path, *cmd: str, timeout: float = 600) -> str:
    env = {**stage_env(), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The tracked files of the repo under test (not its outputs or venv), committed in a new git repo."""
    # The offline plots template (and .dvc/config.local naming it) come from `make install`.
    assert TEMPLATE.is_file(), f"run `make install` (or `make test`) first: {TEMPLATE} is missing"
    return git_repo_copy(tmp_path_factory.mktemp("e2e") / "repo", QUICK)


def flatten(nested: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} → {'a.b': 1}: `dvc metrics diff --json` nests metric names by dots."""
    flat = {}
    for key, value in nested.items():
        flat.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def test_repro_then_ln_experiment_metrics_diff_plots_and_exp_show(clone, tmp_path):
    sh(clone, "dvc", "repro")
    metrics = json.loads((clone / "metrics/eval.json").read_text())
    assert 0 <= metrics["test"]["acc"] <= 100 and metrics["test"]["loss"] > 0
    assert metrics["final"]["epoch"] == 1 and metrics["best"]["epoch"] == 1
    assert 0 < metrics["params"] < 10_000 and len(metrics["per_class_acc"]) == 10
    run = json.loads((clone / "metrics/run.json").read_text())
    assert run["device"] == "cpu" and run["seconds"] > 0 and run["precision"] in ("bf16", "float32")
    for rel in ("model/model.pt", "model/params.json", "dvc.lock",
                "plots/confusion.csv", "plots/confusion.png", "plots/misclassified.png",
                "dvclive/plots/metrics/test/acc.tsv", "data/raw/mnist/train-images-idx3-ubyte.gz"):
        assert (clone / rel).is_file(), rel
    assert (clone / "plots/confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "up to date" in sh(clone, "dvc", "status")
    sh(clone, "git", "add", "-A")
    sh(clone, "git", "commit", "-qm", "baseline: bn")

    sh(clone, "dvc", "exp", "run", "-S", "norm=ln")
    assert "norm: ln" in (clone / "params.yaml").read_text()
    assert json.loads((clone / "model/params.json").read_text())["norm"] == "ln"

    diff = json.loads(sh(clone, "dvc", "metrics", "diff", "--json"))
    changes = flatten((diff["diff"] if "diff" in diff else diff)["metrics/eval.json"], "")
    assert changes["test.acc.old"] == metrics["test"]["acc"]
    assert changes["test.acc.new"] == json.loads((clone / "metrics/eval.json").read_text())["test"]["acc"]
    assert "params.old" not in changes  # BN and LN have the same parameter count...
    assert changes["test.loss.old"] != changes["test.loss.new"]  # ...but train differently

    out = tmp_path / "plots-html"
    sh(clone, "dvc", "plots", "show", "--out", str(out))
    html = (out / "index.html").read_text()
    for name in ("loss per epoch", "accuracy per epoch", "plots/confusion.csv", "plots/confusion.png",
                 "plots/misclassified.png"):
        assert name in html, name

    rows = json.loads(sh(clone, "dvc", "exp", "show", "--json"))
    variants = [_exp_params(exp) for row in rows for exp in [row, *_children(row)]]
    norms = [p.get("norm") for p in variants if p]
    assert "ln" in norms and "bn" in norms, norms


def _children(row: dict) -> list[dict]:
    return [exp for branch in row.get("experiments") or [] for exp in branch.get("revs", [])]


def _exp_params(exp: dict) -> dict:
    data = exp.get("data") or {}
    return (data.get("params") or {}).get("params.yaml", {}).get("data", {})
