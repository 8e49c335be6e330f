"""The shape of the code: training never imports analysis, and what DVC and the checkpoint
fingerprint track is exactly what the train and evaluate stages run."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from normlab import checkpoint

TRAINING = sorted(
    (ROOT / "normlab").glob("*.py")
)  # the library; analysis lives in normlab/analysis/


def imported_modules(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize(
    "path",
    TRAINING + sorted((ROOT / "stages").glob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_training_code_never_imports_analysis(path):
    bad = sorted(n for n in imported_modules(path) if n.startswith("normlab.analysis"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def loaded_repo_files(module: str) -> list[str]:
    """The repository files Python has loaded after importing `module` in a fresh interpreter:
    measured, independently of checkpoint.closure's reading of import statements."""
    code = (
        f"import json, sys, {module}; "
        "print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) "
        "if getattr(m, '__file__', None))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files = [Path(f).resolve() for f in json.loads(out) if Path(f).is_absolute()]
    return sorted(
        str(f.relative_to(ROOT)) for f in files if f.is_relative_to(ROOT) and ".venv" not in f.parts
    )


def dvc_code_deps(stage: str) -> list[str]:
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["deps"]
    return sorted(d for d in deps if d.endswith(".py"))


@pytest.mark.parametrize("stage", ["validate", "download", "train", "evaluate", "explain"])
def test_dvc_deps_are_exactly_the_files_the_stage_imports(stage):
    loaded = loaded_repo_files(f"stages.{stage}")
    # Lazy imports (kornia, torch.compile) load only on some paths; none is a repository file.
    assert dvc_code_deps(stage) == loaded


def test_fingerprint_hashes_exactly_the_train_stage_closure():
    hashed = [str(p.relative_to(ROOT)) for p in checkpoint.closure()]
    assert hashed == loaded_repo_files("stages.train")


def test_fingerprint_changes_with_a_training_file_not_with_analysis(tmp_path, monkeypatch):
    """Edit a copy of the code: a training module changes the fingerprint, a report module not."""
    import shutil

    for name in ("normlab", "stages"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(checkpoint, "ROOT", tmp_path)
    monkeypatch.setattr(checkpoint, "TRAIN_ENTRY", tmp_path / "stages" / "train.py")
    before = checkpoint.fingerprint({"seed": 0})
    analysis = tmp_path / "normlab" / "analysis" / "report.py"
    analysis.parent.mkdir(exist_ok=True)
    analysis.write_text(analysis.read_text() + "\n# edited\n" if analysis.exists() else "# new\n")
    assert checkpoint.fingerprint({"seed": 0}) == before
    loop = tmp_path / "normlab" / "loop.py"
    loop.write_text(loop.read_text() + "\n# edited\n")
    assert checkpoint.fingerprint({"seed": 0}) != before
