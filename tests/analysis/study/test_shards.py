"""Shards: disjoint, deterministic slices of a plan; and a study spread over clones via git."""

import random
import shutil
from typing import get_args

import pytest

from conftest import ROOT, base, write_dataset
from helpers import git, resolved, study, study_text, tiny_repo
from normlab.analysis.study import cost, pick, records, store
from normlab.analysis.study import plan as studies
from normlab.errors import NormlabError
from normlab.types import Dataset


@pytest.fixture(scope="module")
def runs() -> list[studies.PlannedRun]:
    spec = studies.load_file(ROOT / "studies/default.yaml")
    return studies.plan(spec, base(), epochs=2).runs  # bn/gn/ln-bs64 = norms' runs


@pytest.mark.parametrize("count", [1, 2, 3, 7, 60])
def test_shards_are_disjoint_cover_the_plan_and_keep_one_run_in_one_shard(runs, count):
    shards = [pick.shard(runs, i, count) for i in range(1, count + 1)]
    labels = [r.label for s in shards for r in s]
    assert sorted(labels) == sorted(r.label for r in runs)  # every run, once
    keys = [{r.key for r in s} for s in shards]
    assert sum(map(len, keys)) == len({r.key for r in runs})  # a shared run: one shard


@pytest.mark.parametrize("count", [2, 3, 7])
def test_shards_of_a_mixed_plan_differ_by_at_most_one_runs_cost(runs, count):
    """MNIST, Fashion, CIFAR and batch 16-128 runs: equal counts would be hours apart."""
    costs = {r.key: cost.cost(r.params) for r in runs}
    assert max(costs.values()) > 3 * min(costs.values())  # the plan is mixed
    loads = [
        sum(costs[k] for k in {r.key for r in pick.shard(runs, i, count)})
        for i in range(1, count + 1)
    ]
    assert max(loads) - min(loads) <= max(costs.values())
    keys = sorted(costs)  # round-robin by key (what --shard did before) is far less even
    dealt = [sum(costs[k] for k in keys[i::count]) for i in range(count)]
    assert max(loads) - min(loads) < max(dealt) - min(dealt)


def test_a_run_costs_epochs_times_steps_times_its_step_the_same_on_every_host():
    recipe = resolved()  # MNIST recipe: 20 epochs × 937 steps
    assert cost.cost(recipe) == 20 * 937
    assert cost.cost(resolved({"data.limit": 6400})) == 20 * 100
    held_out = resolved({"data.val": 10000, "train.batch_size": 2})  # 50,000 images to train on
    assert cost.steps_per_epoch(held_out) == 25000
    assert cost.steps_per_epoch(resolved({"data.val": 10000, "data.limit": 20000})) == 312
    proxy = resolved({"dataset": "cifar10-proxy"})
    assert 3.5 < cost.cost(proxy) / cost.cost(recipe) < 4.5  # as measured: CIFAR ≈ 4× MNIST
    small, large = (resolved({"train.batch_size": b}) for b in (16, 128))
    assert 2.1 < cost.cost(small) / cost.cost(large) < 2.6  # measured 2.3×, not 8× the steps
    assert set(cost.DATASET_FACTOR) == set(get_args(Dataset))


def test_runs_are_taken_longest_first_ties_by_key(runs):
    ordered = cost.longest_first(runs)
    costs = [cost.cost(r.params) for r in ordered]
    assert costs == sorted(costs, reverse=True) and ordered[0].params["dataset"] == "cifar10-proxy"
    assert cost.longest_first(list(reversed(runs))) == ordered  # whatever the plan's order


def test_shards_do_not_depend_on_the_order_of_the_plan(runs):
    shuffled = random.Random(0).sample(runs, len(runs))
    for i in (1, 2, 3):
        assert {r.label for r in pick.shard(shuffled, i, 3)} == {
            r.label for r in pick.shard(runs, i, 3)
        }


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", "-1/2", "", "1/2/3"])
def test_a_bad_shard_is_one_line(text):
    with pytest.raises(NormlabError, match=r"--shard .*: expected I/N with 1 ≤ I ≤ N") as err:
        pick.parse_shard(text)
    assert "\n" not in str(err.value)
    assert pick.parse_shard("2/3") == (2, 3)


def _clone(remote, dest):
    assert (
        git("clone", "-q", "-b", "main", str(remote), str(dest), cwd=remote.parent).returncode == 0
    )
    write_dataset(dest / "data/raw/mnist", n_train=600, n_test=200)  # data/raw is not in git
    return dest


def _run_shard(repo, shard: str, amp: str) -> str:
    ran = study(
        repo,
        "run",
        "--file",
        "studies/t.yaml",
        "--shard",
        shard,
        "--commit",
        "--set",
        f"engine.amp={amp}",
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


@pytest.mark.slow
def test_two_clones_run_a_shard_each_and_a_third_collects_every_run_once(tmp_path):
    seed = tiny_repo(tmp_path / "seed", study_text(variants=("bn", "ln")))
    shutil.copy(ROOT / "studies/claims.yaml", seed / "studies/claims.yaml")
    assert git("add", "studies/claims.yaml", cwd=seed).returncode == 0
    assert git("commit", "-qm", "claims", cwd=seed).returncode == 0
    remote = tmp_path / "remote.git"
    assert git("init", "-q", "--bare", str(remote), cwd=tmp_path).returncode == 0
    assert git("push", "-q", str(remote), "HEAD:refs/heads/main", cwd=seed).returncode == 0
    a, b, late = (_clone(remote, tmp_path / name) for name in ("a", "b", "late"))

    out_a = _run_shard(a, "1/2", "off")
    assert "(shard 1/2: 1 of 2): 0 have records, 1 to train" in out_a
    assert git("push", "-q", "origin", "main", cwd=a).returncode == 0
    _run_shard(b, "2/2", "off")
    assert git("push", "-q", "origin", "main", cwd=b).returncode != 0  # a pushed first
    assert git("pull", "-q", "--rebase", "origin", "main", cwd=b).returncode == 0  # no shared file
    assert git("push", "-q", "origin", "main", cwd=b).returncode == 0
    subjects = git("log", "--format=%s", cwd=b).stdout
    assert subjects.count("record: t/") == 2 and "record: t/bn/s0: " in subjects

    again = _run_shard(a, "1/2", "off")  # a shard re-run skips what is done
    assert "1 have records, 0 to train" in again and "start " not in again

    collector = tmp_path / "collector"
    assert (
        git("clone", "-q", "-b", "main", str(remote), str(collector), cwd=tmp_path).returncode == 0
    )
    found = store.read_all(collector / "results")
    assert sorted(r.label() for r in found) == ["t/bn/s0", "t/ln/s0"]  # every run, once
    assert records.conflicts(found) == []
    plan = study(collector, "plan", "--file", "studies/t.yaml")
    assert "2 runs: 2 done, 0 to run" in plan.stdout, plan.stdout + plan.stderr
    report = study(collector, "--file", "studies/t.yaml", module="report")
    assert report.returncode == 0, report.stdout + report.stderr
    assert (collector / "results/t/README.md").exists()

    # a clone that trained shard 1 too, with other arithmetic (bf16): same run, other digits
    _run_shard(late, "1/2", "bf16")
    pulled = git("pull", "--no-rebase", "origin", "main", cwd=late)
    assert pulled.returncode != 0 and "CONFLICT (add/add)" in pulled.stdout  # reported by git
    mine = next(
        p for p in (late / "results/t/runs/t").rglob("s0.json") if "<<<<<<<" in p.read_text()
    )
    broken = study(late, "plan", "--file", "studies/t.yaml")  # one line naming the file
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1
    assert broken.stderr.startswith(f"error: {mine.relative_to(late)}: not a JSON record")
    theirs = git("show", f"origin/main:{mine.relative_to(late)}", cwd=late).stdout
    assert theirs == (a / mine.relative_to(late)).read_text()  # the remote's record is untouched
