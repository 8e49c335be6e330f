"""The shape of the code, kept by tests so that later work splits a module rather than growing
it: packages by job with imports one way and no cycle, no module over 300 lines, no two module
names that differ only by a suffix; and what DVC and the checkpoint fingerprint track is exactly
what each stage runs."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from normlab.train import checkpoint

PACKAGE = ROOT / "normlab"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 300
# Each part of normlab, in the order imports may go: a module imports only modules of its own
# part or of parts before it. The training library (base … train) is what stages/ run.
LAYERS = [
    ("base", ["types", "errors", "io", "paths", "yamlfile"]),
    ("nets, data", ["nets", "data"]),
    ("config", ["config", "recipe"]),  # a recipe's model: the (torch-free) layout grammar
    ("train", ["train", "explain"]),
    ("packed", ["packed"]),  # experimental: apart, imported by no stage
    ("analysis.study", ["analysis.study"]),
    ("analysis.claims", ["analysis.claims"]),
    ("analysis.report", ["analysis.report"]),
]
# The two packages that hold parts rather than belong to one: their __init__ is a docstring.
HOLDERS = {"normlab": 0, "normlab.analysis": 5}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def normlab_imports(path: Path) -> set[str]:
    """The normlab modules `path` imports (a name that is a function or class, not a module,
    is dropped: `from normlab.errors import NormlabError` imports normlab.errors)."""
    known = {module_name(p) for p in MODULES}
    return {n for n in imported_modules(path) if n in known} - {module_name(path)}


def layer(name: str) -> int:
    """The index in LAYERS of the part module `name` belongs to."""
    if name in HOLDERS:
        return HOLDERS[name]
    inner = name.removeprefix("normlab.")
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(inner == p or inner.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{name}: in no part of LAYERS (add it there)")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_one_way(path):
    """A module imports its own part and the parts before it: the training library never
    imports packed or analysis, study never claims or report, claims never report."""
    mine = layer(module_name(path))
    later = sorted(n for n in normlab_imports(path) if n != "normlab" and layer(n) > mine)
    assert not later, f"{path.relative_to(ROOT)} ({LAYERS[mine][0]}) imports {later}"


def test_no_import_cycle():
    """Modules import each other as a tree, not a loop (function-level imports included)."""
    graph = {module_name(p): normlab_imports(p) for p in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise AssertionError("import cycle: " + " → ".join(cycle))
        if name not in done:
            for other in sorted(graph.get(name, ())):
                visit(other, [*path, name])
            done.add(name)

    for name in sorted(graph):
        visit(name, [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_300_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines; split it by job"


def test_no_two_module_names_differ_only_by_a_suffix():
    """study/studies, run/runner, plots/plotting read as one name: a newcomer guesses wrong.
    Two names clash when the shorter begins the longer, or does less its last letter."""
    names = sorted(
        {p.stem for p in MODULES if p.stem != "__init__"} | {p.parent.name for p in MODULES}
    )
    names = [n for n in names if n not in ("__main__", "normlab")]  # the project's own name
    clashes = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for short, long in [sorted((a, b), key=len)]
        if short != long
        and (long.startswith(short) or (len(short) >= 4 and long.startswith(short[:-1])))
    ]
    assert not clashes, clashes


def test_types_imports_nothing_of_normlab():
    """The shared names load alone: a module needing only them pulls in nothing else."""
    assert not normlab_imports(PACKAGE / "types.py")


@pytest.mark.parametrize(
    "path",
    [p for p in sorted((ROOT / "stages").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_stages_never_import_analysis_or_packed(path):
    bad = sorted(
        n for n in imported_modules(path) if n.startswith(("normlab.analysis", "normlab.packed"))
    )
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
    assert not [f for f in loaded if f.startswith(("normlab/packed/", "normlab/analysis/"))]


def test_stages_depend_on_the_recipes_they_use_not_on_every_recipe():
    """validate reads recipes.yaml and writes the resolved params; the stages after it read
    and track those (model/params.json), so another dataset's recipe reruns none of them."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "recipes.yaml" in stages["validate"]["deps"]
    assert stages["validate"]["params"] == [{"params.yaml": None}]
    for name in ("download", "train", "evaluate"):
        params = stages[name]["params"]
        assert [list(p) for p in params] == [["model/params.json"]], (name, params)
        assert "recipes.yaml" not in stages[name].get("deps", [])
    for name in ("train", "evaluate"):
        assert "model/params.json" in stages[name]["deps"]


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
    analysis = tmp_path / "normlab" / "analysis" / "report" / "cli.py"
    analysis.write_text(analysis.read_text() + "\n# edited\n")
    packed = tmp_path / "normlab" / "packed" / "fit.py"
    packed.write_text(packed.read_text() + "\n# edited\n")
    assert checkpoint.fingerprint({"seed": 0}) == before
    loop = tmp_path / "normlab" / "train" / "loop.py"
    loop.write_text(loop.read_text() + "\n# edited\n")
    assert checkpoint.fingerprint({"seed": 0}) != before


def test_pyproject_finds_every_package():
    """packages.find names every sub-package, so a non-editable install (`pip install .`, no
    -e) holds them all, the package __main__ modules of the two commands included."""
    from setuptools import find_packages

    include = ["normlab*", "stages*"]
    assert f"include = {json.dumps(include)}" in (ROOT / "pyproject.toml").read_text()
    packages = {module_name(p) for p in MODULES if p.name == "__init__.py"} | {"stages"}
    assert set(find_packages(ROOT, include=include)) == packages
