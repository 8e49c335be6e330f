"""studies/seeds.yaml: each write-up's study plans, validates and builds its net at the write-up's
own parameter count, never moves when params.yaml's defaults do, names the variants the claims
read; and one of them runs end to end, under the `tiny` profile, through the study runner and
through `dvc exp run` alike (slow)."""

import json
import sys

import pytest
import yaml

from conftest import ROOT, base, git_repo_copy, sh, stage_env
from normlab import config
from normlab.analysis.study import plan as studies
from normlab.analysis.study import store
from normlab.nets.build import count_params
from normlab.train import prepare

FILE = ROOT / "studies" / "seeds.yaml"
# study → (epochs, variants in file order, parameter count of its net)
EXPECTED = {
    "s000": (20, ["gn+l1", "bn+l1+l2", "ln+l2", "bn", "gn", "ln"], 8_690),
    "s001": (
        25,
        ["bn", "gn", "ln", "bn+l1+l2-as-described", "gn+l1-as-described", "ln+l2-as-described"],
        7_288,
    ),
    "s001-batch": (
        25,
        [f"{norm}-bs{bs}" for bs in (16, 32, 64, 128) for norm in ("bn", "gn", "ln")],
        7_288,
    ),
    "s002": (20, ["bn+l1", "ln", "gn", "bn"], 7_614),
    "s002-cohort": (20, ["bn+l1", "bn", "ln", "gn"], 7_614),
    "s003": (25, ["gn+l1", "bn+l1+l2", "ln+l2", "bn", "gn", "ln"], 9_680),
    "s004": (20, ["bn", "gn", "ln"], 40_394),
}


@pytest.fixture(scope="module")
def spec() -> studies.StudyFile:
    return studies.load_file(FILE)


@pytest.fixture(scope="module")
def plan(spec) -> studies.Plan:
    return studies.plan(spec, base())


def by_label(plan: studies.Plan) -> dict[str, studies.PlannedRun]:
    return {run.label: run for run in plan.runs}


def test_each_write_up_has_its_variants_three_seeds_and_its_epochs(spec, plan):
    assert {name: (s.epochs, list(s.variants)) for name, s in spec.studies.items()} == {
        name: (epochs, variants) for name, (epochs, variants, _) in EXPECTED.items()
    }
    # seeds 0–2 (claims.yaml's v1 and v2's pilot) for every variant of a write-up's study; the
    # fresh seeds claims-v2.yaml registered on top (s002-cohort has no pilot: all 8 are fresh)
    for name, study in spec.studies.items():
        for variant in study.variants:
            seeds = study.seeds_of(variant)
            assert seeds[:3] == [0, 1, 2] and seeds == sorted(seeds), (name, variant)
    assert len(plan.runs) == 45 + 54 + 36 + 24 + 32 + 18 + 18 == 227
    assert len({run.key for run in plan.runs}) == 227 - 9  # s001-batch's batch 128 is s001's
    assert all(r.params["recipe"]["epochs"] == EXPECTED[r.study][0] for r in plan.runs)


def test_every_run_builds_its_write_ups_net_at_its_published_size(plan):
    built = {}
    for run in plan.runs:
        shape = (run.study, run.params["norm"], run.params["groups"])
        if shape not in built:
            built[shape] = count_params(prepare.model_for(config.Params(**run.params)))
    assert {(study, n) for (study, _, _), n in built.items()} == {
        (study, count) for study, (_, _, count) in EXPECTED.items()
    }


def test_no_seed_study_moves_when_params_yaml_defaults_do(plan, spec):
    """Every study pins its dataset, groups, penalties and whole recipe (002's unpublished one
    too): other defaults in params.yaml and recipes.yaml leave every run's identity key as it
    was."""
    other = base()
    other.params.update(
        dataset="fashion-mnist", groups=1, l1=0.5, l2=0.5, data={"limit": 1000, "val": 5000}
    )
    changed = {
        "model": "cnn-pad",
        "epochs": 3,
        "batch_size": 32,
        "lr": 0.5,
        "momentum": 0.5,
        "nesterov": False,
        "schedule": "cosine",
        "dropout": 0.3,
        "l1_form": "mean",
        "l1_scope": "all",
        "l2_scope": "all",
        "rotate": 15,
        "crop": 2,
        "flip": True,
        "cutout": 4,
        "jitter": 0.3,
        "randaugment": 0.5,
        "tta": True,
    }
    other.recipes.update({name: {**r, **changed} for name, r in other.recipes.items()})
    assert [r.key for r in studies.plan(spec, other).runs] == [r.key for r in plan.runs]


def test_001s_recipe_and_its_batch_table(plan):
    runs = by_label(plan)
    recipe = runs["s001/gn/s0"].params["recipe"]
    assert {k: recipe[k] for k in ("lr", "momentum", "nesterov", "schedule", "milestones")} == {
        "lr": 0.04104,
        "momentum": 0.9,
        "nesterov": False,
        "schedule": "step",
        "milestones": [14, 16, 18, 20, 22, 24],
    }
    assert recipe["gamma"] == 0.09 and recipe["dropout"] == 0.069
    assert runs["s001/gn/s0"].params["l1"] == 0  # as its notebook ran: penalties never on
    described = runs["s001/gn+l1-as-described/s0"].params
    assert described["l1"] == 1e-4 and described["recipe"]["l1_scope"] == "all"
    for norm in ("bn", "gn", "ln"):  # one lr at every batch size
        bs16 = runs[f"s001-batch/{norm}-bs16/s0"].params["recipe"]
        assert bs16["lr"] == 0.04104 and bs16["batch_size"] == 16
        assert runs[f"s001-batch/{norm}-bs128/s1"].key == runs[f"s001/{norm}/s1"].key


def test_004_trains_on_the_proxy_with_its_recipe_per_norm(plan):
    runs = by_label(plan)
    for norm, dropout, milestones in (("bn", 0.02, [8, 16]), ("gn", 0.0, [7, 14])):
        params = runs[f"s004/{norm}/s0"].params
        r = params["recipe"]
        assert params["dataset"] == "cifar10-proxy"
        assert (r["dropout"], r["milestones"], r["randaugment"]) == (dropout, milestones, 0.25)
        assert (r["order"], r["bias"], r["batch_size"], r["lr"]) == (
            "conv-norm-relu",
            True,
            64,
            0.01,
        )


def test_the_tiny_profile_shrinks_every_study(spec):
    tiny = studies.plan(spec, base(), profile="tiny")
    assert len(tiny.runs) == 7 * 2 * 2  # fresh seeds drop out too: the profile's are [0, 1]
    assert all(r.params["recipe"]["epochs"] == 1 and r.params["limit"] == 500 for r in tiny.runs)


def test_claims_on_seed_studies_name_variants_of_this_file(spec):
    """Every claim of v1 (claims.yaml) and v2 (claims-v2.yaml) on this file names its variants;
    every study of the file is tested by some claim."""
    named = []
    for claims_file in (ROOT / "studies" / "claims.yaml", ROOT / "studies" / "claims-v2.yaml"):
        claims = yaml.safe_load(claims_file.read_text())
        named += [
            (c["study"], v)
            for c in claims.get("claims", [])
            if c.get("file", "seeds") == "seeds"
            for v in (c.get("variants") or [x for pair in c.get("pairs") or [] for x in pair])
        ] + [(r["study"], r["variant"]) for r in claims.get("reported", [])]
    missing = [
        f"{study}/{v}"
        for study, v in named
        if study in spec.studies and v not in spec.studies[study].variants
    ]
    assert not missing and {study for study, _ in named} >= set(EXPECTED)


def dvc_value(value) -> str:
    """A value as `dvc exp run -S key=value` takes it: YAML, and JSON is YAML."""
    return json.dumps(value)


@pytest.mark.slow
def test_a_seed_study_runs_end_to_end_under_the_tiny_profile(tmp_path):
    """s003 (mean-|w| L1 and weight decay over all parameters, jitter, a layout, constant lr)
    under `tiny`: four records from the study runner; then one of its runs as `dvc exp run -S …`,
    which scores the same test accuracy as its record."""
    repo = git_repo_copy(tmp_path / "repo", skip=("results/",))
    env = {**stage_env(), "NORMLAB_CACHE": str(tmp_path / "cache")}
    args = ["--file", "studies/seeds.yaml", "--study", "s003", "--profile", "tiny"]
    out = sh(repo, sys.executable, "-m", "normlab.analysis.study", "run", *args, env=env)
    assert "4/4 runs have records under results/seeds-tiny/runs" in out
    found = {r.label(): r for r in store.read_all(repo / "results" / "seeds-tiny")}
    assert sorted(found) == [f"s003/{v}/s{s}" for v in ("bn+l1+l2", "gn+l1") for s in (0, 1)]
    record = found["s003/gn+l1/s0"]
    assert record.params["recipe"]["l1_form"] == "mean" and record.param_count == 9_680
    assert record.history[0]["reg/l1"] > 0 and len(record.history) == 1

    run = by_label(studies.plan(studies.load_file(FILE), base(), profile="tiny"))
    overrides = run["s003/gn+l1/s0"].overrides
    sets = [f"-S{key}={dvc_value(value)}" for key, value in overrides.items()]
    sh(repo, "dvc", "exp", "run", *sets, env=env)
    metrics = json.loads((repo / "metrics" / "eval.json").read_text())
    assert metrics["test"]["acc"] == record.final.acc
    assert json.loads((repo / "model" / "params.json").read_text())["recipe"]["jitter"] == 0.1
