"""Study definitions and plans (fast), and `study run` → `report` end to end on a tiny profile (e2e)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, git_repo_copy
from normlab import study
from normlab.errors import NormlabError

RAW = yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def spec() -> study.StudyFile:
    return study.load_file(ROOT / "studies/default.yaml")


def test_default_studies_have_every_variant_times_every_seed(spec):
    runs = study.plan(spec).runs
    assert len(runs) == 8 * 3 + 12 * 3
    assert len({r.name for r in runs}) == len(runs)
    norms = {r.variant for r in runs if r.study == "norms"}
    assert norms == {"bn+l1+l2", "gn+l1", "ln+l2", "bn", "gn", "ln", "in", "none"}
    assert {r.seed for r in runs} == {0, 1, 2}


def test_every_planned_run_is_valid_params_and_a_valid_experiment_name(spec, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for r in study.plan(spec).runs + study.plan(spec, profile="tiny").runs:
        resolved = study.resolve(RAW, r)  # raises on a typo such as train.batchsize
        assert resolved["seed"] == r.seed and resolved["recipe"]["epochs"] == r.overrides["train.epochs"]
        ref = f"refs/exps/ab/{'c' * 38}/{r.name}"
        assert subprocess.run(["git", "check-ref-format", ref], cwd=tmp_path).returncode == 0, r.name


def test_batch_study_scales_the_learning_rate_linearly(spec):
    for r in study.plan(spec, ["batch"]).runs:
        recipe = study.resolve(RAW, r)["recipe"]
        assert recipe["lr"] == pytest.approx(0.1 * recipe["batch_size"] / 128)


def test_tiny_profile_and_command_line_overrides(spec):
    tiny = study.plan(spec, ["norms"], profile="tiny", sets={"device": "cpu"}).runs
    assert [(r.variant, r.seed) for r in tiny] == [("bn", 0), ("bn", 1), ("gn", 0), ("gn", 1)]
    resolved = study.resolve(RAW, tiny[0])
    assert (resolved["limit"], resolved["recipe"]["epochs"], resolved["device"]) == (500, 1, "cpu")
    assert tiny[0].name == "norms-tiny-bn-s0"
    assert "device=cpu" in tiny[0].set_args() and "norm=bn" in tiny[0].set_args()
    five = study.plan(spec, ["norms"], epochs=5, sets={"norm": "ln"}).runs
    assert all(study.resolve(RAW, r)["recipe"]["epochs"] == 5 and r.overrides["norm"] == "ln" for r in five)


def test_identity_ignores_where_a_run_ran_but_not_what_it_computed(spec):
    run = study.plan(spec, ["norms"]).runs[0]
    base = study.resolve(RAW, run)
    elsewhere = {**base, "device": "cuda", "engine": {**base["engine"], "amp": "bf16"}}
    assert study.science(elsewhere) == study.science(base)
    assert study.science({**base, "l1": 1e-4}) != study.science(base)


def test_a_run_from_before_a_recipe_key_existed_is_the_same_run(spec):
    """Experiments trained before `recipe.tta` existed computed tta = false; they stay finished."""
    run = study.plan(spec, ["norms"]).runs[0]
    base = study.resolve(RAW, run)
    assert base["recipe"]["tta"] is False  # MNIST's recipe
    older = {**base, "recipe": {k: v for k, v in base["recipe"].items() if k != "tta"}}
    assert study.science(older) == study.science(base)
    assert study.science({**base, "recipe": {**base["recipe"], "tta": True}}) != study.science(older)


@pytest.mark.parametrize("text, message", [
    ("studies: {s: {epochs: 0, seeds: [0], variants: {bn: {norm: bn}}}}", "studies.s.epochs"),
    ("studies: {s: {epochs: 1, seeds: [0], variants: {}}}", "studies.s.variants"),
    ("studies: {s: {epochs: 1, seeds: [0], varients: {bn: {norm: bn}}}}", "varients"),
    ("studies: {s: {epochs: 1, seeds: [0], variants: {'bn l1': {norm: bn}}}}", "'bn l1'"),
    ("studies: [", "not valid YAML"),
])
def test_bad_study_file_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(NormlabError, match=message) as err:
        study.load_file(path)
    assert "\n" not in str(err.value)


def test_unknown_study_profile_or_param_is_rejected(spec):
    with pytest.raises(NormlabError, match="study 'norm'"):
        study.plan(spec, ["norm"])
    with pytest.raises(NormlabError, match="profile 'small'"):
        study.plan(spec, profile="small")
    bad = study.plan(spec, ["norms"], sets={"train.batchsize": 8}).runs[0]
    with pytest.raises(NormlabError, match="train.batchsize"):
        study.resolve(RAW, bad)


# --- end to end: a real tiny study in a temporary git copy of the repo -------------------------

def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.e2e
def test_study_runs_once_and_report_rebuilds_results_also_from_a_bundle(tmp_path):
    repo = git_repo_copy(tmp_path / "repo")
    options = ["--study", "norms", "--profile", "tiny"]
    first = _python("-m", "normlab.study", "run", *options, cwd=repo)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "4/4 runs finished" in first.stdout and first.stdout.count("finished norms-tiny-") == 4
    exps = study.experiments(repo)
    assert sorted(e.name for e in exps) == ["norms-tiny-bn-s0", "norms-tiny-bn-s1", "norms-tiny-gn-s0",
                                            "norms-tiny-gn-s1"]
    # the outputs the report reads are committed into each experiment's git commit
    eval_ = study.read_json(exps[0].sha, "metrics/eval.json", repo)
    assert 0 <= eval_["test"]["acc"] <= 100
    message = _git("log", "-1", "--format=%B", exps[0].sha, cwd=repo)
    assert message.startswith("normlab study norms variant") and "command: python -m normlab.study run" in message

    again = _python("-m", "normlab.study", "run", *options, cwd=repo)
    assert again.returncode == 0 and "0 to queue" in again.stdout and "4/4 runs finished" in again.stdout
    assert len(study.experiments(repo)) == 4

    built = _python("-m", "normlab.report", *options, cwd=repo)
    assert built.returncode == 0, built.stderr[-3000:]
    readme = (repo / "results/README.md").read_text()
    for variant in ("bn", "gn"):
        assert f"| {variant} | norm={variant}" in readme and "| 2/2 |" in readme
    assert re.search(r"^- \*\*gn\*\* (vs|is (higher|lower) than) \*\*bn\*\*", readme, re.M)
    assert "4 runs on cpu" in readme and "study command: `python -m normlab.study run --study norms" in readme
    for name in ("curves", "accuracy", "confusion", "misclassified"):
        assert (repo / f"results/norms-{name}.png").stat().st_size > 5000

    # experiments moved as a git bundle of refs/exps into another clone: DVC and the report read them
    refs = _git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=repo).split()
    _git("bundle", "create", str(tmp_path / "exps.bundle"), *refs, cwd=repo)
    clone = tmp_path / "clone"
    _git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    _git("fetch", "-q", str(tmp_path / "exps.bundle"), "refs/exps/*:refs/exps/*", cwd=clone)
    shown = _python("-m", "dvc", "exp", "show", "--json", cwd=clone)
    assert shown.returncode == 0, shown.stderr[-2000:]
    names = {e["name"] for base in json.loads(shown.stdout) for e in base.get("experiments") or []}
    assert names == {e.name for e in exps}
    rebuilt = _python("-m", "normlab.report", *options, cwd=clone)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (clone / "results/README.md").read_text().split("## How these")[0] == readme.split("## How these")[0]
