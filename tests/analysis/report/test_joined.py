"""The batch-size curve (normlab.analysis.report.joined, .batchcurve, .figures.batchsize): only
runs of one recipe are joined, pending batch sizes say n = 0, the GroupNorm paper's points stay
on a panel of their own, BN's features at batch 2 vs 64 once both exist, runs with a validation
split show val beside test, and `make report` builds the curve's report before its own runs."""

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import write_params
from helpers import fake_record, history
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report import batchcurve, cli, joined, sections, views
from normlab.analysis.report.figures import batchsize
from normlab.analysis.study import overrides, records, store
from normlab.analysis.study import plan as st


def run(norm: str, batch: int, seed: int, acc: float, **kw) -> vd.Outcome:
    study = "small-batch" if batch < 16 else "batch"
    raw = fake_record(study, f"{norm}-bs{batch}", seed, acc, norm=norm, batch_size=batch, **kw)
    return vd.run_of(raw)


def curve_of(runs: list[vd.Outcome], pending: list[vd.Outcome] = ()) -> joined.Curve:
    """The curve of the first run's recipe, planning `runs` and `pending` (no records)."""
    planned = [(joined.slot(r.study, r.params), r.params) for r in [*runs, *pending]]
    return joined.join(joined.recipe(runs[0].params), planned, runs)


def test_a_record_of_another_recipe_is_never_joined():
    same = [run("bn", 2, 0, 99.0), run("bn", 2, 1, 99.2), run("gn", 2, 0, 99.5)]
    other = run("bn", 2, 2, 90.0, l2=1e-4)  # a penalty: another recipe, whatever its batch
    curve = curve_of([*same, other, run("bn", 16, 0, 99.5)])
    assert other not in curve.runs and curve.other_recipe == (other,)
    assert len(curve.runs) == 4
    assert sum((s.norm, s.batch) == ("bn", 2) for s in curve.planned) == 2  # not the l2 one
    table = joined.table(curve)
    assert "| **bn** | 0.90 ± 0.14 (2) |" in table  # errors 1.0 and 0.8; 10.0 left out


def test_the_table_says_which_batch_sizes_are_pending_and_how_many_runs_each_has():
    curve = curve_of([run("bn", 16, 0, 99.5)], pending=[run("ln", 4, 0, 99.0)])
    rows = {line.split(" | ")[0].strip("| "): line for line in joined.table(curve).splitlines()}
    assert rows["norm"].startswith("| norm | batch 2 | batch 4 | batch 8 | batch 16 |")
    assert rows["norm"].endswith("| batch 128 |")  # the axis is 2–128 whatever has runs
    assert rows["**ln**"].split(" | ")[2] == "n = 0 (pending)"  # planned at 4, no record
    assert rows["**ln**"].split(" | ")[1] == "–"  # not planned at 2
    assert rows["runs / planned"].split(" | ")[1:5] == ["0 / 0", "0 / 1", "0 / 0", "1 / 1"]
    assert "4: 0 / 1 (pending)" in batchcurve.per_batch(curve)


def test_the_figure_keeps_imagenet_on_its_own_axis_and_marks_pending_sizes(tmp_path):
    runs = [run(n, b, s, 99.5 - 0.01 * s) for n in ("bn", "gn") for b in (16, 64) for s in (0, 1)]
    counts = {2: "n=0/2\npending", 16: "n=4/4"}
    fig = batchsize.figure(runs, "t", tmp_path / "f.png", (2, 4, 16, 64), counts, paper=True)
    mnist, paper = fig.axes[0], fig.axes[1]
    assert [t.get_text() for t in mnist.get_xticklabels()] == [
        "2\nn=0/2\npending",
        "4",
        "16\nn=4/4",
        "64",
    ]
    assert mnist.get_ylim()[1] < 5  # MNIST's errors of 0.5 %: no ImageNet point on this axis
    assert "ImageNet" in paper.get_title() and paper.get_ylim()[0] >= 20
    assert {line.get_label() for line in paper.get_lines()} == {"BN", "GN"}
    assert (tmp_path / "f.png").exists()


def test_bn_features_at_batch_2_vs_64_once_both_have_records(tmp_path):
    hist = history(4, 99.0)
    later = [run("bn", 64, s, 99.5, hist=hist) for s in (0, 1)]
    text = batchcurve.features(curve_of(later), tmp_path)
    assert "drawn once both have records with features (now n = 0 at batch 2" in text[0]
    assert not (tmp_path / batchcurve.FEATURES).exists()
    both = curve_of([run("bn", 2, 0, 99.0, hist=hist), *later])
    assert batchcurve.features(both, tmp_path)[0].startswith("![BN at batch 2 and 64")
    assert (tmp_path / batchcurve.FEATURES).exists()


def test_the_section_names_the_recipe_the_sources_and_what_was_left_out(tmp_path):
    curve = curve_of(
        [run("bn", 16, 0, 99.5), run("bn", 16, 1, 90.0, l2=1e-4)], [run("bn", 2, 0, 99.0)]
    )
    text = batchcurve.section(curve, tmp_path)
    assert text.startswith(f"## {batchcurve.HEADING}")
    assert "2: 0 / 1 (pending)" in text and "16: 1 / 1" in text
    assert "l2 0, all training images" in text
    assert "**Left out**: 1 records of another recipe (batch/bn-bs16 s1)" in text
    assert "batch 2: planned by study `small-batch`" in text
    assert "Wu & He (2018)" in text and (tmp_path / batchcurve.FIGURE).exists()


def test_batchs_section_links_to_the_curve_once_its_report_is_built():
    defined = {"small-batch": Path("studies/small-batch.yaml")}
    built = [Path("results/small-batch/README.md")]
    line = batchcurve.links(built, defined)["batch"]
    assert "](small-batch/README.md#batch-size-curve)" in line
    assert batchcurve.links([], defined) == {} and batchcurve.links(built, {}) == {}


def val_study(held: int) -> views.StudyView:
    runs = []
    for seed, (test, val) in enumerate([(99.1, 98.6), (99.3, 98.8)]):
        hist = history(3, test)
        if held:
            hist = [h | {"val/acc": val, "val/loss": 0.05} for h in hist]
        raw = fake_record("lr", "bn-bs2", seed, test, epochs=3, hist=hist)
        raw["params"]["val"] = held
        runs.append(vd.run_of(raw))
    return views.StudyView("lr", "lr check", "mnist", 3, (0, 1), {"bn-bs2": ""}, tuple(runs))


def test_runs_with_a_validation_split_show_val_beside_test_and_say_choices_read_val(tmp_path):
    table = sections.study_table(val_study(10000))
    header, _, row = table.splitlines()
    assert "| final test acc % | final val acc % |" in header
    assert "| 99.20 ± 0.14 | 98.70 ± 0.14 |" in row
    text = sections.study_section(val_study(10000), tmp_path)
    assert "(the last 10000 training images, `data.val`)" in text
    assert "read on the final **val** accuracy, never on test" in text
    assert "*best epoch*: the test accuracy at the epoch of highest val accuracy" in text
    assert "picked on the test set" in sections.study_section(val_study(0), tmp_path)
    assert "val acc" not in sections.study_table(val_study(0))
    assert "**val**" not in sections.study_section(val_study(0), tmp_path)


BATCH = {"norm": "bn", "train.batch_size": 16, "train.lr": 0.025}
STUDY_FILES = {
    "default.yaml": {
        "batch": {
            "description": "fake batch",
            "epochs": 1,
            "seeds": [0],
            "variants": {
                "bn-bs16": BATCH,
                "gn-bs16": {**BATCH, "norm": "gn"},
            },
        }
    },
    "small-batch.yaml": {
        "small-batch": {
            "description": "fake small batch",
            "epochs": 1,
            "seeds": [0],
            "variants": {"bn-bs2": {"norm": "bn", "train.batch_size": 2, "train.lr": 0.003125}},
        }
    },
}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repo with `batch`'s records and none of `small-batch`'s."""
    write_params(tmp_path)
    (tmp_path / "studies").mkdir()
    for name, studies in STUDY_FILES.items():
        (tmp_path / "studies" / name).write_text(yaml.safe_dump({"studies": studies}))
    claim = {"id": "c1", "source": "x", "text": "t", "study": "batch", "kind": "higher"}
    claim |= {"metric": "final", "variants": ["gn-bs16", "bn-bs16"]}
    (tmp_path / "studies" / "claims.yaml").write_text(yaml.safe_dump({"claims": [claim]}))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fake"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    plan = st.plan(st.load_file(st.DEFAULT_FILE), overrides.base_params())
    for planned, acc in zip(plan.runs, (99.4, 99.6), strict=True):
        raw = fake_record("batch", planned.variant, 0, acc, epochs=1)
        raw |= {"params": planned.params, "key": planned.key}
        store.write(planned.path, records.validate(raw, planned.path))
    return tmp_path


def test_make_report_builds_the_curve_before_its_own_runs_and_links_it(repo):
    cli.main([])
    mine = (repo / "results" / "small-batch" / "README.md").read_text()
    assert "0 of 1 planned runs have records" in mine
    assert "| **bn** | n = 0 (pending) |" in mine
    assert "| **gn4** | – |" in mine and "0.60 (1)" in mine
    assert (repo / "results" / "small-batch" / batchcurve.FIGURE).exists()
    main = (repo / "results" / "README.md").read_text()
    assert "](small-batch/README.md#batch-size-curve)" in main
    assert f"## {batchcurve.HEADING}" not in main  # the curve lives in the small-batch report
