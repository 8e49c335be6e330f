"""Fashion-MNIST: fetched md5-verified through NORMLAB_DATA_MIRROR, read by the IDX path, and its
class names reach the metrics and the confusion matrix. Uses the real files of the mirror, found
as users find it: $NORMLAB_DATA_MIRROR (relative to the repo root, where users run dvc), else
../shared/datasets beside the repo; skipped, saying where it looked, where it is absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, copy_code, stage_env, write_params
from normlab import config
from normlab.data import fetch, readers, specs

MIRROR = (ROOT / os.environ.get(fetch.MIRROR_ENV, "../shared/datasets")).resolve()  # absolute stays
pytestmark = [
    pytest.mark.slow,  # the real 60000 + 10000 images, evaluated in full
    pytest.mark.skipif(
        not (MIRROR / "fashion-mnist").is_dir(),
        reason=f"no Fashion-MNIST mirror at {MIRROR} (set {fetch.MIRROR_ENV} to a "
        "folder laid out <mirror>/fashion-mnist/<file>)",
    ),
]


def stage(repo: Path, name: str) -> subprocess.CompletedProcess:
    env = {**stage_env(), fetch.MIRROR_ENV: str(MIRROR)}
    done = subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="session")
def fashion(tmp_path_factory) -> tuple[Path, str]:
    """A copy of the code whose params pick Fashion-MNIST (one epoch of 512 images), with the
    dataset downloaded once through the mirror; and what the download stage printed."""
    repo = copy_code(tmp_path_factory.mktemp("fashion") / "repo")
    write_params(
        repo, {"dataset": "fashion-mnist", "device": "cpu", "data.limit": 512, "train.epochs": 1}
    )
    stage(repo, "validate")  # download reads the resolved params it writes
    return repo, stage(repo, "download").stdout


def test_fashion_download_verifies_and_loads(fashion):
    repo, out = fashion
    assert out.count(str(MIRROR / "fashion-mnist")) == 4
    raw = repo / "data" / "raw" / "fashion-mnist"
    assert {p.name: fetch.md5(p) for p in raw.iterdir()} == specs.SPECS["fashion-mnist"].files
    train, test, _ = readers.load("fashion-mnist", raw, limit=512)
    assert train.images.shape == (512, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))
    params = config.load(repo / "params.yaml", repo / "recipes.yaml")
    recipe = params.recipe  # Fashion's recipe, not MNIST's:
    assert recipe.flip and recipe.tta and recipe.rotate == 0
    assert recipe.model == "cnn-pad"


def test_fashion_class_names_reach_metrics_and_confusion(fashion):
    repo, _ = fashion
    for name in ("validate", "train", "evaluate"):
        stage(repo, name)
    classes = specs.SPECS["fashion-mnist"].classes
    ev = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(ev["per_class_acc"]) == set(classes)
    rows = (repo / "plots" / "confusion.csv").read_text().splitlines()[1:]
    assert len(rows) == 10000
    assert {name for row in rows for name in row.split(",")} <= set(classes)
    assert "Ankle boot" in {row.split(",")[0] for row in rows}
    assert json.loads((repo / "metrics" / "run.json").read_text())["data"] == "fashion-mnist"
    # evaluate scores as training did: with the recipe's tta
    assert ev["test"]["acc"] == ev["final"]["acc"]
