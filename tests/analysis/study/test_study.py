"""Study files, plans and where their records go (fast: no training here; see test_pool.py)."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, base, committed_recipes, params_dict
from helpers import record_dict, write_raw
from normlab.analysis.study import cli, overrides, records, store
from normlab.analysis.study import plan as studies
from normlab.errors import NormlabError

BASE = base()


@pytest.fixture(scope="module")
def spec() -> studies.StudyFile:
    return studies.load_file(ROOT / "studies/default.yaml")


def test_default_studies_have_every_variant_times_every_seed(spec):
    runs = studies.plan(spec, BASE).runs
    # norms (bn, gn, ln: 3 fresh seeds for claims-v2's `recipe`), fashion, cifar, batch
    assert len(runs) == (7 * 3 + 1 + 3 * 3) + (4 * 3 + 1) + 5 * 3 + 12 * 3
    assert len({r.label for r in runs}) == len(runs) == len({r.path for r in runs})
    norms = {r.variant for r in runs if r.study == "norms"}
    assert norms == {"bn+l1+l2", "gn+l1", "ln+l2", "bn", "gn", "ln", "in", "none"}
    assert {r.seed for r in runs if r.variant not in ("bn", "gn", "ln")} == {0, 1, 2}
    assert {r.seed for r in runs if r.study == "norms" and r.variant == "gn"} == set(range(6))
    assert runs[0].path == Path("results/runs/norms/bn/s0.json")


def test_every_planned_run_resolves_to_its_study_epochs_and_seed(spec):
    for r in studies.plan(spec, BASE).runs + studies.plan(spec, BASE, profile="tiny").runs:
        assert r.params["seed"] == r.seed
        assert r.params["recipe"]["epochs"] == r.overrides["train.epochs"]
        assert r.key == records.identity(r.params)


def test_batch_study_scales_the_learning_rate_linearly(spec):
    for r in studies.plan(spec, BASE, ["batch"]).runs:
        recipe = r.params["recipe"]
        assert recipe["lr"] == pytest.approx(0.1 * recipe["batch_size"] / 64)


def test_tiny_profile_and_command_line_overrides(spec):
    tiny = studies.plan(spec, BASE, ["norms"], profile="tiny", sets={"device": "cpu"}).runs
    assert [(r.variant, r.seed) for r in tiny] == [("bn", 0), ("bn", 1), ("gn", 0), ("gn", 1)]
    p = tiny[0].params
    assert (p["limit"], p["recipe"]["epochs"], p["device"]) == (500, 1, "cpu")
    five = studies.plan(spec, BASE, ["norms"], epochs=5, sets={"norm": "ln"}).runs
    assert all(r.params["recipe"]["epochs"] == 5 and r.params["norm"] == "ln" for r in five)


def test_a_variant_can_run_fewer_seeds_and_a_profile_keeps_them(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "profiles: {two: {seeds: [5, 6]}, first: {variants: 1}}\n"
        "studies: {s: {epochs: 1, seeds: [0, 1, 2], variants: {bn: {}, in: {norm: in}},"
        " variant_seeds: {in: [0]}}}\n"
    )
    spec = studies.load_file(path)
    labels = [r.label for r in studies.plan(spec, BASE).runs]
    assert labels == ["s/bn/s0", "s/bn/s1", "s/bn/s2", "s/in/s0"]
    labels = [r.label for r in studies.plan(spec, BASE, profile="two").runs]
    assert labels == ["s/bn/s5", "s/bn/s6", "s/in/s0"]
    assert studies.plan(spec, BASE, profile="first").studies["s"].variant_seeds == {}


def test_a_run_shared_by_two_studies_has_one_key():
    """bn, gn, ln at batch 64 (the recipe) are in both default studies: at equal epochs, trained
    once."""
    both = studies.load_file(ROOT / "studies/default.yaml")
    runs = studies.plan(both, BASE, epochs=2).runs
    norms_bn = next(r for r in runs if r.label == "norms/bn/s0")
    batch_bn = next(r for r in runs if r.label == "batch/bn-bs64/s0")
    assert norms_bn.key == batch_bn.key and norms_bn.path != batch_bn.path
    assert len(cli.todo(runs, [])) == len(runs) - 3 * 3  # 3 variants × 3 seeds


def test_records_of_a_profile_or_another_file_go_to_their_own_folder(tmp_path):
    default = studies.DEFAULT_FILE
    assert studies.results_dir(default, None) == Path("results")
    assert studies.results_dir(default, "tiny") == Path("results/tiny")
    assert studies.results_dir(Path("studies/mine.yaml"), None) == Path("results/mine")
    assert studies.results_dir(Path("studies/mine.yaml"), "tiny") == Path("results/mine-tiny")
    spec = studies.load_file(ROOT / default)
    tiny = studies.plan(spec, BASE, ["norms"], profile="tiny", out=Path("results/tiny"))
    assert tiny.runs[0].path == Path("results/tiny/runs/norms/bn/s0.json")


def test_a_plan_skips_runs_that_have_records(spec, tmp_path):
    runs = studies.plan(spec, BASE, ["norms"], profile="tiny").runs
    held = write_raw(tmp_path / "elsewhere/s1.json", record_dict(runs[1].params))
    other = write_raw(
        tmp_path / "other/s0.json", record_dict(studies.plan(spec, BASE).runs[0].params)
    )
    known = store.read_all(tmp_path)
    assert [r.label for r in cli.todo(runs, known)] == [
        "norms/bn/s0",
        "norms/gn/s0",
        "norms/gn/s1",
    ]
    assert held.exists() and other.exists()


def test_the_base_params_are_heads_not_the_workspaces(tmp_path):
    """params.yaml and recipes.yaml as committed: a `dvc exp run -S` change is no base."""
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    recipes = committed_recipes()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params_dict(), "norm": "gn"}))
    (tmp_path / "recipes.yaml").write_text(yaml.safe_dump(recipes))
    subprocess.run(["git", "add", "params.yaml", "recipes.yaml"], cwd=tmp_path, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "p"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params_dict(), "norm": "ln"}))
    (tmp_path / "recipes.yaml").write_text(yaml.safe_dump({**recipes, "mnist": {}}))
    committed = overrides.base_params(tmp_path)
    assert committed.params["norm"] == "gn" and committed.recipes == recipes
    with pytest.raises(NormlabError, match="params.yaml: not committed at HEAD"):
        overrides.base_params(Path("/"))  # no git repository there


ONE_STUDY = "studies: {s: {epochs: 1, seeds: [0], variants: {bn: {}}}}"


@pytest.mark.parametrize(
    "text, message",
    [
        ("studies: {s: {epochs: 0, seeds: [0], variants: {bn: {norm: bn}}}}", "studies.s.epochs"),
        ("studies: {s: {epochs: 1, seeds: [0], variants: {}}}", "studies.s.variants"),
        ("studies: {s: {epochs: 1, seeds: [0], varients: {bn: {norm: bn}}}}", "varients"),
        ("studies: {s: {epochs: 1, seeds: [0], variants: {'bn l1': {norm: bn}}}}", "'bn l1'"),
        ("studies: {s: {epochs: 1, seeds: [0], variants: {'../x': {norm: bn}}}}", "'../x'"),
        ("studies: [", "not valid YAML"),
        ("studies: {s: {epochs: 1, epochs: 2}}", "not valid YAML .found the key 'epochs' twice"),
        ("", r"s.yaml: expected a mapping with key 'studies' at the top level \(the file is empty"),
        ("[norms]", r"s.yaml: expected a mapping with key 'studies' at the top level$"),
        (
            "studies: {s: {epochs: 1, seeds: [0], variants: {bn: {}}, variant_seeds: {in: [0]}}}",
            r"studies.s.variant_seeds.in: not a variant of the study \(variants: bn\)",
        ),
        (
            "studies: {s: {epochs: 1, seeds: [0], variants: {bn: {}}, variant_seeds: {bn: []}}}",
            "studies.s.variant_seeds.bn: give at least one seed",
        ),
        ("studies: {s: {epochs: true, seeds: [0], variants: {bn: {}}}}", "studies.s.epochs"),
        ("studies: {s: {epochs: 1, seeds: ['0'], variants: {bn: {}}}}", "studies.s.seeds.0"),
        ("studies: {s: {epochs: 1, seeds: [0, 0], variants: {bn: {}}}}", "seed 0 is given twice"),
        ("studies: {s: {epochs: 1, seeds: [0], set: {seed: 3}, variants: {bn: {}}}}", "s.set"),
        ("studies: {s: {epochs: 1, seeds: [0], variants: {bn: {seed: 3}}}}", "variants.bn: key"),
        (
            "profiles: {'../x': {epochs: 1}}\n" + ONE_STUDY,
            "profile name '../x'",
        ),
        (
            "profiles: {p: {seeds: []}}\n" + ONE_STUDY,
            "profiles.p.seeds",
        ),
    ],
)
def test_bad_study_file_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(NormlabError, match=message) as err:
        studies.load_file(path)
    assert "\n" not in str(err.value)


def test_unknown_study_profile_or_param_is_rejected(spec):
    with pytest.raises(NormlabError, match="study 'norm'"):
        studies.plan(spec, BASE, ["norm"])
    with pytest.raises(NormlabError, match="profile 'small'"):
        studies.plan(spec, BASE, profile="small")
    with pytest.raises(NormlabError, match="study norms, variant bn: .*train.batchsize"):
        studies.plan(spec, BASE, ["norms"], sets={"train.batchsize": 8})
    with pytest.raises(NormlabError, match="--set 'norm': expected key=value"):
        overrides.parse_sets(["norm"])
    sets = overrides.parse_sets(
        ["engine.amp=off", "train.flip=true", "l1=2.0e-5", "data.limit=500"]
    )
    assert sets == {"engine.amp": "off", "train.flip": True, "l1": 2e-5, "data.limit": 500}
    assert overrides.parse_sets(["train.epochs=010", "train.model=1:30"]) == {
        "train.epochs": 10,  # YAML 1.1 would read octal 8 and base-60 90
        "train.model": "1:30",
    }


@pytest.mark.parametrize(
    "sets, message",
    [
        (["seed=5"], r"--set 'seed=5': a run's seed comes from `seeds:`"),
        (["norm=["], r"--set 'norm=\[': not a YAML value"),
    ],
)
def test_a_bad_set_is_one_line(sets, message):
    with pytest.raises(NormlabError, match=message) as err:
        overrides.parse_sets(sets)
    assert "\n" not in str(err.value)


def test_a_variant_is_checked_like_the_validate_stage_before_anything_trains(spec):
    """groups must divide every layer's channels: found at plan time, naming the study."""
    with pytest.raises(NormlabError) as err:
        studies.plan(spec, BASE, ["norms"], sets={"norm": "gn", "groups": 3})
    assert str(err.value).startswith("study norms, variant bn: groups = 3 does not divide")
    with pytest.raises(NormlabError, match="'train' is a section of params.yaml: set its keys"):
        studies.plan(spec, BASE, ["norms"], sets={"train": 5})


def test_variant_and_seed_pick_runs_and_name_what_is_allowed(capsys):
    """`plan --variant V --seed N` lists just those runs; an unknown one is one line."""
    cli.main(["plan", "--study", "norms", "--variant", "gn", "--seed", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["norms/gn/s1"]
    assert re.match(r"31 runs \(1 picked\): [01] done, [01] to run", lines[-1]), lines[-1]
    with pytest.raises(NormlabError, match=r"--variant gm: not in the plan \(allowed: .*gn"):
        cli.main(["plan", "--study", "norms", "--variant", "gm"])
    with pytest.raises(NormlabError, match=r"--seed 7: not in the plan \(allowed: 0, 1, .*, 5\)"):
        cli.main(["plan", "--study", "norms", "--seed", "7"])


def test_a_study_marked_not_run_is_left_out_unless_named(tmp_path, monkeypatch, capsys):
    """`not_run: reason` keeps a study out of `plan`/`run` and says why; --study takes it in."""
    text = (ROOT / "studies/default.yaml").read_text()
    text = text.replace("  batch:\n", '  batch:\n    not_run: "left for a GPU"\n', 1)
    (tmp_path / "s.yaml").write_text(text)
    monkeypatch.chdir(ROOT)  # HEAD's params.yaml
    cli.main(["plan", "--file", str(tmp_path / "s.yaml")])
    lines = capsys.readouterr().out.splitlines()
    assert not any(line.startswith("batch/") for line in lines[:-1])
    assert "(less 36 of batch, not run: left for a GPU; --study batch runs them)" in lines[-1]
    cli.main(["plan", "--file", str(tmp_path / "s.yaml"), "--study", "batch"])
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("batch/") for line in lines) == 36 and "less" not in lines[-1]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_verify_names_its_device_option_not_params_yaml(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "x.json", "--device", "tpu"])
    assert "argument --device: invalid choice: 'tpu'" in capsys.readouterr().err
    record = next(ROOT.glob("results/runs/*/*/s*.json"))
    with pytest.raises(NormlabError, match=r"^--device cuda: not available on this machine"):
        cli.main(["verify", str(record), "--device", "cuda"])
