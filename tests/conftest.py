"""Shared fixtures: tiny synthetic IDX datasets, params built from the committed params.yaml and
recipes.yaml, throw-away copies of the repo in which the real stage entry points run as
subprocesses, and one real `dvc repro` per session that the end-to-end tests share.

Tests never read the workspace's params.yaml: `dvc exp run -S dataset=fashion-mnist` leaves
its params applied there (DVC does), and the suite must not depend on what the user last ran.
"""

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
MNIST = {"dataset": "mnist"}  # overrides for a run on a synthetic dataset in data/raw/mnist
RECIPES = "recipes."  # overrides whose key starts so are of recipes.yaml: "recipes.mnist.lr"
IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An unsigned-byte IDX file, gzipped, in the official layout: magic 0x08_0N, N big-endian
    dims, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))
    return path


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28×28 uint8 images whose class (0-9) is a bright horizontal band, plus noise:
    learnable, tiny."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 + 2 * k : 4 + 2 * k, 4:24] = 255
    return images, labels


def write_dataset(
    folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0
) -> dict[str, Path]:
    """The four MNIST-style IDX .gz files of a synthetic dataset in `folder`: name → path."""
    train, test = synthetic_images(n_train, seed), synthetic_images(n_test, seed + 1)
    arrays = (train[0], train[1], test[0], test[1])
    return {name: write_idx(folder / name, a) for name, a in zip(IDX_NAMES, arrays, strict=True)}


@pytest.fixture(autouse=True)
def checkpoint_cache(tmp_path: Path, monkeypatch) -> Path:
    """Each test's own normlab cache (checkpoints), never the user's ~/.cache/normlab; stage
    subprocesses inherit it through stage_env()."""
    from normlab.train.checkpoint import CACHE_ENV

    cache = tmp_path / "normlab-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def cnn(norm: str = "bn", groups: int = 4, dropout: float = 0.0, model: str = "cnn"):
    """normlab's MNIST net (`model: cnn`, or another recipe model) for 1×28×28 images, built
    as a run builds it (normlab.nets.build)."""
    from normlab.nets.build import build

    return build(
        model, norm=norm, groups=groups, dropout=dropout, in_channels=1, classes=10, size=28
    )


def recipe_with(**overrides):
    """The MNIST recipe of the committed recipes.yaml with `overrides`, validated
    (recipe.Recipe)."""
    from normlab.recipe import Recipe

    return Recipe.model_validate({**committed_recipes()["mnist"], **overrides})


def committed(name: str) -> dict:
    """A YAML file of the repo as committed at HEAD, never the workspace's copy (see the module
    docstring)."""
    shown = subprocess.run(
        ["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return yaml.safe_load(shown.stdout)


def committed_params() -> dict:
    """params.yaml as committed at HEAD."""
    return committed("params.yaml")


def committed_recipes() -> dict:
    """recipes.yaml as committed at HEAD."""
    return committed("recipes.yaml")


def _apply(raw: dict, overrides: dict) -> dict:
    """Dotted-key overrides applied to a loaded YAML mapping (DELETE removes the key)."""
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return raw


def params_dict(overrides: dict | None = None) -> dict:
    """The committed params.yaml as a dict, with dotted-key overrides (`{"train.lr": 1e6}`;
    DELETE removes the key); keys of recipes.yaml (RECIPES, e.g. "recipes.mnist.lr") are left
    to `recipes_dict`."""
    own = {k: v for k, v in (overrides or {}).items() if not k.startswith(RECIPES)}
    return _apply(committed_params(), own)


def recipes_dict(overrides: dict | None = None) -> dict:
    """The committed recipes.yaml as a dict, with the overrides of `overrides` whose keys
    start with RECIPES ("recipes.mnist.lr": recipes.yaml's mnist.lr)."""
    own = {
        k.removeprefix(RECIPES): v for k, v in (overrides or {}).items() if k.startswith(RECIPES)
    }
    return _apply(committed_recipes(), own)


def parse(overrides: dict | None = None):
    """config.Params of the committed params.yaml and recipes.yaml with `overrides`."""
    from normlab import config

    return config.parse(params_dict(overrides), recipes_dict(overrides))


def base(overrides: dict | None = None):
    """What a study's runs start from (overrides.Base): the committed files, with `overrides`."""
    from normlab.analysis.study.overrides import Base

    return Base(params_dict(overrides), recipes_dict(overrides))


def write_params(repo: Path, overrides: dict | None = None) -> Path:
    """`repo`/params.yaml and `repo`/recipes.yaml: the committed files with `overrides`
    (`params_dict` and `recipes_dict` keys); returns params.yaml's path."""
    (repo / "recipes.yaml").write_text(yaml.safe_dump(recipes_dict(overrides), sort_keys=False))
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(params_dict(overrides), sort_keys=False))
    return path


def resolve(repo: Path) -> Path:
    """`repo`/model/params.json from its params.yaml and recipes.yaml, as the validate stage
    writes it (in-process: its checks of devices and sizes are test_bad_params.py's), for the
    stages after it, which read that file."""
    from normlab import config
    from normlab.io import write_json

    params = config.load(repo / "params.yaml", repo / "recipes.yaml")
    write_json(repo / "model" / "params.json", params.model_dump())
    return repo


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (bytecode caches aside) → its bytes, to prove nothing changed."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


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
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=repo,
        env=stage_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command (dvc, git) as a user would, in `stage_env()` with a git identity; its
    stdout, or a failed assertion showing the end of its output."""
    env = {
        **(env or stage_env()),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "DVC_NO_ANALYTICS": "1",
    }
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


TEMPLATE = ROOT / ".dvc" / "plots_template.html"  # built by `make install`, gitignored
LOCAL_CONFIG = ROOT / ".dvc" / "config.local"  # by `make install`: names TEMPLATE for dvc plots


def git_repo_copy(dest: Path, overrides: dict | None = None, skip: tuple[str, ...] = ()) -> Path:
    """This worktree as git would commit it (tracked and untracked-but-not-ignored files, minus
    paths starting with `skip`), plus the offline plots template that `make install` built and
    the local DVC config naming it, with the committed params.yaml and recipes.yaml plus
    `overrides` (`write_params`), committed in a fresh git repo at `dest`: DVC needs a git repo,
    DVCLive a commit, and this tree's own outputs must stay untouched."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    names = [n for n in listed if n and (ROOT / n).is_file() and not n.startswith(skip)]
    names += [str(p.relative_to(ROOT)) for p in (TEMPLATE, LOCAL_CONFIG) if p.is_file()]
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    write_params(dest, overrides)
    identity = ["-c", "user.name=normlab-test", "-c", "user.email=test@normlab.invalid"]
    for args in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "normlab under test"]):
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True)
    return dest


def copy_code(dest: Path) -> Path:
    """normlab/, stages/ and the committed params.yaml and recipes.yaml in `dest`: somewhere to
    run stages away from this tree's outputs."""
    for name in ("normlab", "stages"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_params(dest)
    return dest


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_code(tmp_path / "repo")


@pytest.fixture
def synthetic_repo(repo: Path) -> Path:
    """`repo` with a tiny synthetic dataset already in data/raw/mnist (what `download` would
    leave); tests write its params with the MNIST overrides, so the stages read that folder."""
    write_dataset(repo / "data" / "raw" / "mnist", n_train=600, n_test=200)
    return repo


# The shared pipeline run: 8 steps of 64 images per epoch, and 2 epochs, so each curve of
# `dvc plots show` has a line to draw.
PIPELINE_RUN = {"data.limit": 512, "train.epochs": 2}


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """One real `dvc repro` of the committed params made tiny (PIPELINE_RUN), in a git copy of
    this repo (`git_repo_copy`), its outputs committed as the baseline. Shared by test_e2e.py
    and test_plots_html.py, which only read it: a test that changes it works on a copy."""
    from normlab.train.checkpoint import CACHE_ENV

    root = tmp_path_factory.mktemp("pipeline")
    repo = git_repo_copy(root / "repo", PIPELINE_RUN)
    # Its own checkpoint cache: the per-test one (checkpoint_cache) is not set up yet.
    env = {**stage_env(), CACHE_ENV: str(root / "normlab-cache")}
    sh(repo, "dvc", "repro", env=env)
    sh(repo, "git", "add", "-A", env=env)
    sh(repo, "git", "commit", "-qm", "baseline: bn", env=env)
    return repo
