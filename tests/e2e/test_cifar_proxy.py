"""One real `dvc exp run -S dataset=cifar10-proxy` on a tiny synthetic archive served through
NORMLAB_DATA_MIRROR: every result it writes says PROXY and uses the CIFAR-10 class names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import git_repo_copy
from helpers import write_archive
from normlab.data import fetch, specs
from normlab.nets.build import count_params
from normlab.nets.resnet import ResNet

CLASSES = specs.CIFAR_CLASSES


@pytest.mark.e2e
@pytest.mark.slow
def test_dvc_exp_run_cifar10_proxy_end_to_end(tmp_path):
    """`dvc exp run -S dataset=cifar10-proxy` on a tiny synthetic archive served by the mirror;
    every result it writes says PROXY and uses the CIFAR-10 class names."""
    repo = git_repo_copy(tmp_path / "repo", skip=("data/mnist/", "tests/"))
    mirror = tmp_path / "mirror"
    (mirror / "cifar10-proxy").mkdir(parents=True)
    write_archive(mirror / "cifar10-proxy" / "cifar-10-binary-proxy.tar.gz")
    env = {
        **os.environ,
        fetch.MIRROR_ENV: str(mirror),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    sh(
        "dvc",
        "exp",
        "run",
        "-S",
        "dataset=cifar10-proxy",
        "-S",
        "norm=gn",
        "-S",
        "groups=4",
        "-S",
        "data.limit=60",
        "-S",
        "train.epochs=1",
        "-S",
        "train.batch_size=6",
        "-S",
        "device=cpu",
    )
    run = json.loads((repo / "metrics/run.json").read_text())
    assert run["data"].startswith("cifar10-proxy (PROXY, not CIFAR-10")
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert set(ev["per_class_acc"]) == set(CLASSES)
    assert ev["params"] == count_params(ResNet("gn", 4, 0.0, in_channels=3, classes=10))
    confusion = (repo / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 51
    assert {row.split(",")[0] for row in confusion[1:]} <= set(CLASSES)
    assert sorted(p.name for p in (repo / "data/raw/cifar10-proxy").iterdir()) == sorted(
        ["cifar-10-binary-proxy.tar.gz", *specs.CIFAR_MEMBERS]
    )
    assert "cifar10-proxy" in sh("dvc", "exp", "show", "--csv")
