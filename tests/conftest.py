"""Shared fixtures: tiny synthetic IDX datasets, params built from the repo's params.yaml, and
throw-away copies of the repo in which the real stage entry points run as subprocesses."""

import copy
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DELETE = object()  # an override value meaning "remove this key"
IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An unsigned-byte IDX file, gzipped, in the official layout: magic 0x08_0N, N big-endian dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))
    return path


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28×28 uint8 images whose class (0-9) is a bright horizontal band, plus noise: learnable, tiny."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 + 2 * k: 4 + 2 * k, 4:24] = 255
    return images, labels


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> dict[str, Path]:
    """The four MNIST-style IDX .gz files of a synthetic dataset in `folder`; returns name → path."""
    train, test = synthetic_images(n_train, seed), synthetic_images(n_test, seed + 1)
    arrays = (train[0], train[1], test[0], test[1])
    return {name: write_idx(folder / name, a) for name, a in zip(IDX_NAMES, arrays)}


@pytest.fixture(autouse=True)
def checkpoint_cache(tmp_path: Path, monkeypatch) -> Path:
    """Each test's own normlab cache (checkpoints), never the user's ~/.cache/normlab; stage
    subprocesses inherit it through stage_env()."""
    from normlab.checkpoint import CACHE_ENV

    cache = tmp_path / "normlab-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def recipe_with(**overrides):
    """The MNIST recipe of the committed params with `overrides`, validated (config.Recipe)."""
    from normlab.config import Recipe

    return Recipe.model_validate({**repo_params()["recipes"]["mnist"], **overrides})


def repo_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def params_dict(overrides: dict | None = None) -> dict:
    """The repo's params.yaml as a dict, with dotted-key overrides (`{"train.lr": 1e6}`; DELETE removes)."""
    raw = copy.deepcopy(repo_params())
    for dotted, value in (overrides or {}).items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return raw


def write_params(repo: Path, overrides: dict | None = None) -> Path:
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict(overrides), sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (bytecode caches aside) → its bytes, to prove nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def stage_env() -> dict[str, str]:
    """The environment stage subprocesses run in: this venv first on PATH, no mirror, no bytecode
    files, one torch thread (tiny nets on a shared 2-core machine run faster without contention)."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("NORMLAB_DATA_MIRROR", None)
    return env


def run_stage(repo: Path, stage: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m stages.<stage>` in `repo`, as dvc.yaml runs it."""
    return subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=repo, env=stage_env(),
                          capture_output=True, text=True, timeout=timeout)


TEMPLATE = ROOT / ".dvc" / "plots_template.html"  # built by `make install`, gitignored,
LOCAL_CONFIG = ROOT / ".dvc" / "config.local"  # written by `make install`: names TEMPLATE for `dvc plots show`


def git_repo_copy(dest: Path, overrides: dict | None = None, skip: tuple[str, ...] = ()) -> Path:
    """This worktree as git would commit it (tracked and untracked-but-not-ignored files, minus
    paths starting with `skip`), plus the offline plots template that `make install` built and
    the local DVC config naming it, with
    params.yaml overridden (`params_dict` keys), committed in a fresh git repo at `dest`: DVC
    needs a git repo, DVCLive a commit, and this tree's own outputs must stay untouched."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    names = [n for n in listed if n and (ROOT / n).is_file() and not n.startswith(skip)]
    names += [str(p.relative_to(ROOT)) for p in (TEMPLATE, LOCAL_CONFIG) if p.is_file()]
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    if overrides:
        write_params(dest, overrides)
    identity = ["-c", "user.name=normlab-test", "-c", "user.email=test@normlab.invalid"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "normlab under test"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def copy_code(dest: Path) -> Path:
    """normlab/, stages/ and params.yaml copied to `dest`: somewhere to run stages away from this tree's outputs."""
    for name in ("normlab", "stages"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "params.yaml", dest / "params.yaml")
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_code(tmp_path / "repo")


@pytest.fixture
def synthetic_repo(repo: Path) -> Path:
    """`repo` with a tiny synthetic dataset already in data/raw/mnist (what `download` would leave)."""
    write_dataset(repo / "data" / "raw" / "mnist", n_train=600, n_test=200)
    return repo
