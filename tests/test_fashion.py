"""Fashion-MNIST: fetched md5-verified through NORMLAB_DATA_MIRROR, read by the IDX path, and its
class names reach the metrics and the confusion matrix. Uses the real files of the shared
mirror (../shared/datasets); skipped where that mirror is absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, copy_code
from normlab import config, data, fetch

MIRROR = Path(os.environ.get("NORMLAB_TEST_MIRROR", ROOT.parent / "shared" / "datasets"))
if not (MIRROR / "fashion-mnist").is_dir():
    MIRROR = Path("/work/shared/datasets")
pytestmark = pytest.mark.skipif(not (MIRROR / "fashion-mnist").is_dir(),
                                reason=f"no Fashion-MNIST mirror at {MIRROR} (set NORMLAB_TEST_MIRROR)")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the code to run stages in, with Fashion-MNIST downloaded through the mirror."""
    dest = copy_code(tmp_path / "repo")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(dataset="fashion-mnist", device="cpu", data={"limit": 512})
    raw["train"].update(epochs=1, batch_size=64)  # 8 steps (OneCycleLR divides by zero at exactly 4)
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


def stage(repo: Path, name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, fetch.MIRROR_ENV: str(MIRROR), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_fashion_download_verifies_and_loads(repo):
    out = stage(repo, "download").stdout
    assert out.count(str(MIRROR / "fashion-mnist")) == 4
    raw = repo / "data" / "raw" / "fashion-mnist"
    assert {p.name: data.md5(p) for p in raw.iterdir()} == data.SPECS["fashion-mnist"].files
    train, test = data.load("fashion-mnist", raw, limit=512)
    assert train.images.shape == (512, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.equal(test.labels.bincount(), torch.full((10,), 1000))
    params = config.load(repo / "params.yaml")
    assert params.recipe.flip and params.recipe.tta and params.recipe.rotate == 0  # Fashion's recipe, not MNIST's
    assert params.recipe.model == "cnn-pad"


def test_fashion_class_names_reach_metrics_and_confusion(repo):
    for name in ("download", "validate", "train", "evaluate"):
        stage(repo, name)
    classes = data.SPECS["fashion-mnist"].classes
    ev = json.loads((repo / "metrics" / "eval.json").read_text())
    assert set(ev["per_class_acc"]) == set(classes)
    rows = (repo / "plots" / "confusion.csv").read_text().splitlines()[1:]
    assert len(rows) == 10000
    assert {name for row in rows for name in row.split(",")} <= set(classes)
    assert "Ankle boot" in {row.split(",")[0] for row in rows}
    assert json.loads((repo / "metrics" / "run.json").read_text())["data"] == "fashion-mnist"
    assert ev["test"]["acc"] == ev["final"]["acc"]  # evaluate scores as training did: with the recipe's tta
