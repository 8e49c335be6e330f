"""The report from fake run records: honest tables and verdicts, PROXY labels, byte-identical
rebuilds, DVC's seed bands, and the CLI reading records and the plan in a throw-away repo."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, write_params
from helpers import diverged_dict, fake_record
from normlab.analysis.claims import schema as cl
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report import cli, sections, summary, views
from normlab.analysis.report.figures import accuracy, canvas, misclassified
from normlab.analysis.report.figures import curves as curve_figures
from normlab.analysis.study import records, store
from normlab.data import readers
from normlab.errors import NormlabError, run_stage


def fake_study(name: str, spec: dict, dataset: str = "mnist", epochs: int = 3) -> views.StudyView:
    """spec: variant → (fake_record keywords, final accuracies, one per seed)."""
    runs, variants = [], {}
    for variant, (kw, accs) in spec.items():
        variants[variant] = " ".join(f"{k}={v}" for k, v in kw.items())
        for seed, acc in enumerate(accs):
            record = fake_record(name, variant, seed, acc, dataset=dataset, epochs=epochs, **kw)
            runs.append(vd.run_of(record))
    seeds = tuple(range(max(len(a) for _, a in spec.values())))
    return views.StudyView(name, f"a fake {name}", dataset, epochs, seeds, variants, tuple(runs))


NORMS = {
    "bn": ({"norm": "bn"}, [99.30, 99.35, 99.28]),
    "gn": ({"norm": "gn"}, [99.31, 99.40, 99.33]),
    "none": ({"norm": "none"}, [99.00, 98.90, 11.35]),
}


def claim(**fields):
    base = {"id": "t1", "source": "999 (a)", "text": "GN beats BN", "study": "norms"}
    return cl.ClaimsFile.model_validate({"claims": [base | fields]}).claims[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report of an MNIST study (a seed of `none` at chance) and a PROXY study, built twice."""
    norms = fake_study("norms", NORMS)
    proxy = fake_study(
        "proxy",
        {"bn": ({"norm": "bn"}, [83.2, 83.4, 83.1]), "gn": ({"norm": "gn"}, [78.6, 78.7, 78.9])},
        dataset="cifar10-proxy",
        epochs=2,
    )
    claims = (
        (claim(kind="higher", metric="final", variants=["gn", "bn"]), norms),
        (
            claim(id="t2", kind="higher", metric="final", variants=["bn", "gn"], study="proxy"),
            proxy,
        ),
        (claim(id="t3", kind="higher", metric="final", variants=["a", "b"], study="s9"), None),
    )
    reported = (cl.Reported(source="999", study="proxy", variant="bn", metric="final", acc=79.39),)
    inputs = views.Inputs((norms, proxy), claims, reported)
    outs = [tmp_path_factory.mktemp(name) for name in ("a", "b")]
    for out in outs:
        cli.build(inputs, out)
    return outs


def test_rebuilding_gives_byte_identical_files(built):
    a, b = built
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".png"]) == 10  # 5 figures a study
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_seed_at_chance_gets_the_did_not_learn_wording(built):
    readme = (built[0] / "README.md").read_text()
    assert "1 of 3 seeds stayed at chance, 11.35 % (seed 2)" in readme  # table and verdict
    verdict = next(line for line in readme.splitlines() if line.startswith("- **none** vs **bn**"))
    assert "(did not learn); the 2 that learned are compared" in verdict
    assert "n = 2 vs 3" in verdict and "Holm p" in verdict
    assert "| none | norm=none | 3/3 (seeds 0–2) | 98.95 ± 0.07 |" in readme  # not 69.18 ± 50.09
    assert "98.95 ± 0.07 (2 of 3; 1 did not learn)" in readme  # the summary's cell


def test_summary_opens_with_norms_by_dataset_claims_and_hardware(built):
    readme = (built[0] / "README.md").read_text()
    summary = readme[readme.index("## Summary") : readme.index("## MNIST")]
    assert "| norm | MNIST | Fashion-MNIST | CIFAR-10 PROXY |" in summary
    assert "| **bn** | 99.31 ± 0.04 (3) | – | 83.23 ± 0.15 (3) |" in summary
    assert "- **supported** (1): t2" in summary and "- **not detectable** (1): t1" in summary
    assert "test host (2 CPUs): 15 runs on cpu, bf16" in summary
    assert "15 of 15 planned runs have records" in summary
    assert "## Fashion-MNIST\n\nNo study of this report runs on Fashion-MNIST yet." in readme


def test_the_proxy_is_never_called_cifar_10(built):
    readme = (built[0] / "README.md").read_text()
    for match in re.finditer("CIFAR-10", readme):
        after, before = (
            readme[match.end() : match.end() + 6],
            readme[match.start() - 4 : match.start()],
        )
        assert after == " PROXY" or before == "not ", readme[match.start() - 40 : match.end() + 40]
    assert "## CIFAR-10 PROXY (not CIFAR-10: JPEG copies of its images)" in readme


def test_claims_and_replication_sections(built):
    readme = (built[0] / "README.md").read_text()
    assert (
        "- **t3** (999 (a); study `s9`, higher): *GN beats BN* — **cannot be tested yet**" in readme
    )
    # a claim names the data it was judged on: a CIFAR-10 claim judged on the proxy says so
    assert "- **t1** (999 (a); study `norms` on MNIST, higher)" in readme
    assert "- **t2** (999 (a); study `proxy` on CIFAR-10 PROXY, higher)" in readme
    assert "| `proxy` | bn | 79.39 (final) | 83.23 ± 0.15 (3) |" in readme


def test_seed_bands_for_dvc(built):
    bands = pd.read_csv(built[0] / "bands" / "norms.csv")
    assert list(bands.columns) == [
        "variant",
        "quantity",
        "epoch",
        "mean",
        "std",
        "low",
        "high",
        "seeds",
    ]
    none = bands[(bands["variant"] == "none") & (bands["quantity"] == "test accuracy %")]
    assert set(none["seeds"]) == {2}  # the run at chance is not in the band
    assert none["mean"].iloc[-1] == pytest.approx(98.95)
    assert (bands["low"] >= 0).all() and (
        bands[bands["quantity"] == "test accuracy %"]["high"] <= 100
    ).all()


def test_figures_fit_the_runs_that_learned(tmp_path):
    runs = fake_study("norms", NORMS).runs
    fig = accuracy.accuracy(runs, list(NORMS), "t", tmp_path / "a.png")
    learned, failed = fig.axes[0], fig.axes[1]
    assert learned.get_xlim()[1] < 5  # errors of 0.6–1.1 %, not 88.65 %
    assert failed.get_title().startswith("did not learn")
    curves = curve_figures.curves(runs, list(NORMS), "t", tmp_path / "c.png")
    assert curves.axes[3].get_yscale() == "log" and curves.axes[3].get_ylim()[1] < 5
    assert canvas.log_ticks(0.6, 1.1) == [0.6, 0.7, 0.8, 1.0]


def test_grid_images_come_from_the_sidecar_or_the_shipped_mnist(tmp_path):
    mnist = vd.run_of(fake_record("s", "bn", 0, 99.0))
    expected = readers.read_idx(ROOT / "data" / "mnist" / "t10k-images-idx3-ubyte.gz", 3)[:25]
    assert (misclassified.grid_images(mnist, ROOT / "data") == expected[:, None]).all()
    proxy = vd.run_of(fake_record("s", "bn", 0, 80.0, dataset="cifar10-proxy"))
    assert misclassified.grid_images(proxy, ROOT / "data") is None  # no sidecar, not shipped
    images = np.arange(25 * 3 * 32 * 32, dtype=np.uint8).reshape(25, 3, 32, 32)
    np.save(tmp_path / "s0.misclassified.npy", images)
    with_sidecar = dataclasses.replace(proxy, source=tmp_path / "s0.json")
    assert (misclassified.grid_images(with_sidecar, ROOT / "data") == images).all()


def test_pairs_are_the_comparisons_a_reader_makes():
    study = fake_study(
        "s",
        {
            "bn": ({"norm": "bn"}, [99.0, 99.1]),
            "gn": ({"norm": "gn"}, [99.0, 99.1]),
            "bn+l1": ({"norm": "bn", "l1": 1e-4}, [99.0, 99.1]),
            "bn-bs16": ({"norm": "bn", "batch_size": 16}, [99.0, 99.1]),
        },
    )
    assert sections.pairs(study) == [("gn", "bn"), ("bn+l1", "bn")]
    # a recipe trial (train.* overrides) → vs the variant of the same norm that keeps the recipe
    trial = dataclasses.replace(
        study, variants={**study.variants, "bn-bs16": "train.batch_size=16"}
    )
    assert sections.pairs(trial) == [("gn", "bn"), ("bn+l1", "bn"), ("bn-bs16", "bn")]


# --- the CLI, on records in a throw-away git repo -------------------------------------------

STUDIES = {
    "profiles": {"tiny": {"epochs": 1}},
    "studies": {
        "fake": {
            "description": "two norms",
            "epochs": 2,
            "seeds": [0, 1],
            "variants": {"bn": {"norm": "bn"}, "gn": {"norm": "gn"}},
        }
    },
}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repo with the committed params.yaml and recipes.yaml, a study file, claims and
    records."""
    write_params(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "default.yaml").write_text(yaml.safe_dump(STUDIES))
    claims = {
        "claims": [
            {
                "id": "c1",
                "source": "x",
                "text": "t",
                "study": "fake",
                "kind": "higher",
                "metric": "final",
                "variants": ["gn", "bn"],
            },
            {
                "id": "c2",
                "source": "x",
                "text": "t",
                "study": "later",
                "kind": "narrower-gap",
                "variants": ["gn", "bn"],
            },
        ]
    }
    (tmp_path / "studies" / "claims.yaml").write_text(yaml.safe_dump(claims))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "fake"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    for epochs, folder in ((2, "results"), (1, "results/tiny")):
        for variant, accs in (("bn", [99.1, 99.2]), ("gn", [99.3, 99.4])):
            for seed, acc in enumerate(accs):
                raw = fake_record("fake", variant, seed, acc, norm=variant, epochs=epochs)
                raw["key"] = records.identity(raw["params"])
                path = tmp_path / folder / "runs" / "fake" / variant / f"s{seed}.json"
                store.write(path, records.validate(raw, path))
    return tmp_path


def test_cli_reads_records_and_the_plan(repo):
    cli.main([])
    readme = (repo / "results" / "README.md").read_text()
    assert "4 of 4 planned runs have records" in readme
    assert "- **c2** (x; study `later`, narrower-gap): *t* — **cannot be tested yet**" in readme
    assert (repo / "results" / "bands" / "fake.csv").exists()
    first = {p: p.read_bytes() for p in (repo / "results").glob("*.*")}
    cli.main([])
    assert first == {p: p.read_bytes() for p in (repo / "results").glob("*.*")}


def test_a_report_of_some_studies_never_replaces_the_report_of_all(repo):
    cli.main([])
    before = (repo / "results" / "README.md").read_bytes()
    with pytest.raises(NormlabError, match=r"--study fake: results/README.md is the report of"):
        cli.main(["--study", "fake"])
    assert (repo / "results" / "README.md").read_bytes() == before


def test_no_options_rebuilds_every_study_files_report_and_links_the_ones_built(repo):
    """`make report`: results/ and results/<file>/ for each other study file with records."""
    one_epoch = {"studies": {"fake": {**STUDIES["studies"]["fake"], "epochs": 1}}}
    (repo / "studies" / "short.yaml").write_text(yaml.safe_dump(one_epoch))  # tiny's records
    three_epochs = {"studies": {"later": {**STUDIES["studies"]["fake"], "epochs": 3}}}
    (repo / "studies" / "later.yaml").write_text(yaml.safe_dump(three_epochs))  # none run
    cli.main([])
    assert "4 of 4 planned runs" in (repo / "results" / "short" / "README.md").read_text()
    assert not (repo / "results" / "later").exists()  # no records: skipped, not an empty report
    # a profile's folder with records (results/tiny/runs/fake/): rebuilt for those studies
    assert "4 of 4 planned runs" in (repo / "results" / "tiny" / "README.md").read_text()
    readme = (repo / "results" / "README.md").read_text()
    assert (
        "[`results/tiny/`](tiny/README.md) (`studies/default.yaml`, profile tiny: fake)" in readme
    )
    assert "[`results/short/`](short/README.md)" in readme and "results/later" not in readme
    files = [p for p in (repo / "results").rglob("s*.json") if "diverged" not in p.name]
    assert f"**All reports together**: {len(files)} runs with records under `results/`" in readme


def test_a_study_without_records_names_the_command_that_runs_it(repo):
    """A study of another file: a plain `make study` would run studies/default.yaml instead."""
    fake = STUDIES["studies"]["fake"]
    short = {"fake": {**fake, "epochs": 1}, "later": {**fake, "seeds": [7]}}
    (repo / "studies" / "short.yaml").write_text(yaml.safe_dump({"studies": short}))
    cli.main(["--file", "studies/short.yaml"])
    readme = (repo / "results" / "short" / "README.md").read_text()
    assert 'run `make study ARGS="--file studies/short.yaml --study later"`' in readme
    cli.main(["--profile", "tiny"])  # the default file: no --file, the profile named
    assert "--study" not in (repo / "results" / "tiny" / "README.md").read_text()


def test_a_profile_writes_its_own_folder_never_results(repo):
    cli.main(["--profile", "tiny"])
    assert (repo / "results" / "tiny" / "README.md").exists()
    assert not (repo / "results" / "README.md").exists()
    readme = (repo / "results" / "tiny" / "README.md").read_text()
    assert "c2" not in readme  # claims of other studies belong to the default report only


def test_a_corrupt_claims_file_is_one_line(repo, capsys):
    (repo / "studies" / "claims.yaml").write_text("claims:\n- {id: c1, kind: similar}\n")
    with pytest.raises(SystemExit) as done:
        run_stage(lambda: cli.main([]))  # as `python -m normlab.analysis.report` runs it
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: studies/claims.yaml: claims[0] (id c1).source: Field required")
    assert not (repo / "results" / "README.md").exists()


def test_a_claim_on_a_variant_its_study_lacks_is_one_line_and_writes_nothing(repo, capsys):
    claims = yaml.safe_load((repo / "studies" / "claims.yaml").read_text())
    claims["claims"][0]["variants"] = ["gn", "nb"]
    (repo / "studies" / "claims.yaml").write_text(yaml.safe_dump(claims))
    with pytest.raises(SystemExit) as done:
        run_stage(lambda: cli.main([]))
    err = capsys.readouterr().err
    assert done.value.code == 2 and err == (
        "error: studies/claims.yaml: claims[0] (id c1).variants: 'nb' is not a variant of "
        "study fake (variants: bn, gn)\n"
    )
    assert not (repo / "results" / "README.md").exists()


@pytest.mark.parametrize("out", ["notes.txt", "notes.txt/report"])
def test_an_out_that_is_no_folder_is_one_line(repo, capsys, out):
    (repo / "notes.txt").write_text("mine\n")
    with pytest.raises(SystemExit) as done:
        run_stage(lambda: cli.main(["--out", out]))
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(f"error: {out}: cannot hold the report ("), err
    assert err.endswith("; allowed: a folder)\n") and err.count("\n") == 1, err
    assert (repo / "notes.txt").read_text() == "mine\n"


# --- the seed bands in DVC's own plots ---------------------------------------------------------

RENDER = """
const dir = process.argv[process.argv.length - 1];
const vega = require(dir + '/vega'), vl = require(dir + '/vega-lite');
const spec = JSON.parse(require('fs').readFileSync(0, 'utf8'));
new vega.View(vega.parse(vl.compile(spec).spec), {renderer: 'none'}).toSVG()
  .then(svg => console.log(JSON.stringify({
    areas: (svg.match(/aria-roledescription="area mark"/g) || []).length,
    lines: (svg.match(/aria-roledescription="line mark"/g) || []).length})));
"""


def test_dvc_plots_show_draws_each_variant_with_its_band(built, tmp_path):
    """dvc.yaml's `results/bands` plot through the template .dvc/plots/bands.json: DVC fills it
    with the CSV, and (where node and the npm vega builds are) vega draws a line and a band per
    variant and quantity."""
    for name in ("dvc.yaml", ".dvc/config", ".dvc/plots/bands.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    write_params(tmp_path)
    shutil.copytree(built[0] / "bands", tmp_path / "results" / "bands")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    dvc = ROOT / ".venv" / "bin" / "dvc"
    shown = subprocess.run(
        [str(dvc), "plots", "show", "--json"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    plots = json.loads(shown)["data"]
    key = next(k for k in plots if k.endswith("results/bands/norms.csv"))
    spec = plots[key][0]["content"]
    assert {row["variant"] for row in spec["data"]["values"]} == {"bn", "gn", "none"}
    assert [layer["mark"]["type"] for layer in spec["spec"]["layer"]] == ["area", "line"]
    node, modules = shutil.which("node"), ROOT / "node_modules"
    if not node or not (modules / "vega-lite").is_dir():
        pytest.skip("node or node_modules/vega-lite missing: the spec is checked, not drawn")
    drawn = subprocess.run(
        [node, "-e", RENDER, str(modules)],
        input=json.dumps(spec),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(drawn) == {"areas": 3 * 2, "lines": 3 * 2}  # 3 variants × 2 panels


def diverged_run(study: str, variant: str, seed: int, norm: str) -> vd.Outcome:
    """A divergence record of a fake run, as the report sees it (no numbers)."""
    params = fake_record(study, variant, seed, 11.35, norm=norm, epochs=3)["params"]
    raw = diverged_dict(params) | {"study": study, "variant": variant, "seed": seed}
    return views.outcome(records.Diverged.model_validate(raw))


def test_a_diverged_seed_is_counted_and_named_and_every_figure_draws(tmp_path):
    spec = {**NORMS, "none": ({"norm": "none"}, [99.00, 98.90]), "in": ({"norm": "in"}, [])}
    study = fake_study("norms", spec)
    gone = (diverged_run("norms", "none", 2, "none"), diverged_run("norms", "in", 0, "in"))
    study = dataclasses.replace(study, runs=study.runs + gone)
    claimed = claim(kind="higher", metric="final", variants=["in", "bn"])
    inputs = views.Inputs((study,), ((claimed, study),))
    readme = cli.build(inputs, tmp_path).read_text()
    assert "1 of 3 seeds diverged (seed 2: diverged at epoch 1, step 3)" in readme
    assert "its one seed diverged (seed 0: diverged at epoch 1, step 3)" in readme
    verdict = next(line for line in readme.splitlines() if line.startswith("- **none** vs **bn**"))
    assert "(did not learn); the 2 that learned are compared" in verdict
    assert "| none | norm=none | 3/3 (seeds 0–2) | 98.95 ± 0.07 |" in readme
    assert "**in** vs **bn**: cannot be tested (not testable: no runs with numbers" in readme
    assert "nan" not in readme.lower()
    assert len(list(tmp_path.glob("*.png"))) == 5  # curves, accuracy, features, errors, grid
    fig = accuracy.accuracy(study.runs, list(spec), "t", tmp_path / "a.png")
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert "s2 diverged at epoch 1, step 3" in texts and "nan" not in " ".join(texts)
    note = canvas.failed_note(study.runs)
    assert "none s2 diverged (diverged at epoch 1, step 3)" in note and "nan" not in note


def test_the_committed_results_are_what_make_report_builds_from_the_committed_records(tmp_path):
    """A clone holding only git's files (records, no DVC experiments, no data downloads)
    rebuilds results/ byte for byte: every number there comes from the records."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    built = subprocess.run(
        [sys.executable, "-m", "normlab.analysis.report"], cwd=clone, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    changed = subprocess.run(
        ["git", "status", "--porcelain", "results/"], cwd=clone, capture_output=True, text=True
    ).stdout
    assert changed == "", changed


def test_the_size_line_names_a_variant_with_fewer_seeds():
    view = fake_study("norms", {"bn": ({"norm": "bn"}, [99.3, 99.4, 99.35])})
    view = dataclasses.replace(view, variant_seeds={"in": (0,)}, missing=(("in", 0),))
    line = sections.size(view)
    assert "seeds 0, 1, 2 (in: 0);" in line and "3 of 4 planned runs have records" in line


def test_a_run_two_studies_share_is_counted_once_in_the_summary_and_provenance():
    norms = fake_study("norms", {"bn": ({"norm": "bn"}, [99.3, 99.4])})
    runs = tuple(dataclasses.replace(r, source=Path(f"r{r.seed}.json")) for r in norms.runs)
    norms = dataclasses.replace(norms, runs=runs, keys=frozenset({"k0", "k1"}))
    batch = dataclasses.replace(norms, name="batch", keys=frozenset({"k0", "k1", "k2"}))
    counted, planned = summary.distinct([norms, batch])
    assert (len(counted), planned) == (2, 3)
    made = cli.provenance(views.Inputs((norms, batch)))
    precision = counted[0].precision
    assert f"- precision: 2 runs in {precision}" in made and "(2 runs)" in made


def test_provenance_says_1_run_not_1_runs():
    norms = fake_study("norms", {"bn": ({"norm": "bn"}, [99.3])})
    made = cli.provenance(views.Inputs((norms,)))
    assert "(1 run)" in made and "- precision: 1 run in" in made


def test_a_study_not_run_says_so_and_why():
    view = fake_study("batch", {"bn": ({"norm": "bn"}, [99.3, 99.4])})
    waiting = dataclasses.replace(view, runs=(), missing=(("bn", 0),), not_run="left for a GPU")
    text = sections.study_section(waiting, Path("unused"))
    assert "**Not run**: left for a GPU." in text and "make study" not in text
    assert "**Not run**" not in sections.study_section(dataclasses.replace(view, runs=()), Path())


def test_seconds_per_epoch_name_the_device_only_where_a_study_ran_on_several():
    view = fake_study("batch", NORMS)
    assert "(cpu)" not in sections.study_table(view)
    runs = tuple(
        dataclasses.replace(r, device="cuda") if r.variant == "gn" else r for r in view.runs
    )
    table = sections.study_table(dataclasses.replace(view, runs=runs))
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert rows["gn"].endswith("(cuda) |") and rows["bn"].endswith("(cpu) |")
