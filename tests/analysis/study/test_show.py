"""`make show`: a study run's record in the terminal, and its history where `dvc plots` draws
it beside an experiment's own curves."""

import io
import json
import shutil

import pytest

from conftest import sh
from helpers import record_dict, resolved
from normlab.analysis.study import cli, records, show, store
from normlab.errors import NormlabError


def _record(tmp_path, epochs: int = 3) -> records.Record:
    params = resolved({"train.epochs": epochs})
    raw = record_dict(params)
    for i, epoch in enumerate(raw["history"]):  # a curve that rises: 97, 98, 99
        epoch["test/acc"] = 97.0 + i
    path = tmp_path / "results/runs/norms/bn/s0.json"
    store.write(path, records.validate(raw, path))
    return store.read(path)


def test_show_prints_the_numbers_and_a_bar_per_epoch_and_writes_dvclive_tsvs(tmp_path):
    record = _record(tmp_path)
    out = io.StringIO()
    show.show(record.source, out, tmp_path / "dvclive")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("norms/bn/s0: mnist, norm bn, l1 0.0, l2 0.0, seed 0; cnn, 3 ")
    assert lines[1].startswith("final test acc 99.47 % (loss 0.0171); best 99.47 % at epoch 3")
    table = lines[lines.index("") + 1 :][:4]
    assert table[0].split()[:9] == "epoch train loss train acc test loss test acc".split()
    bars = [row.split()[-1] for row in table[1:]]
    assert [row.split()[4] for row in table[1:]] == ["97.00", "98.00", "99.00"]
    assert len(bars[0]) < len(bars[1]) < len(bars[2]) == show.BAR  # longer as accuracy grows
    folder = tmp_path / "dvclive/norms/bn/s0/plots/metrics"
    acc = (folder / "test/acc.tsv").read_text().splitlines()
    assert acc == ["step\tacc", "1\t97.0", "2\t98.0", "3\t99.0"]  # DVCLive's own layout
    assert (folder / "weights/small_frac.tsv").read_text().startswith("step\tsmall_frac\n1\t")
    assert f"dvc plots show dvclive/plots/metrics/test/acc.tsv {folder}/test/acc.tsv" in (
        out.getvalue()
    )


def test_a_divergence_record_shows_its_error(tmp_path):
    params = resolved()
    fields = {k: v for k, v in record_dict(params).items() if k in records.Diverged.model_fields}
    gone = records.Diverged.model_validate(
        {**fields, "schema": 1, "error": "diverged at epoch 1, step 3 (loss=nan): lower lr"}
    )
    path = store.write_diverged(tmp_path / "s0.diverged.json", gone)
    out = io.StringIO()
    show.show(path, out, tmp_path)
    assert out.getvalue() == (
        "norms/bn/s0: diverged at epoch 1, step 3 (loss=nan): lower lr (a divergence record: "
        "no history)\n"
    )


def test_a_missing_or_broken_record_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NormlabError) as missing:  # run_stage prints it as one line, exit 2
        cli.main(["show", "results/runs/norms/bn/s9.json"])
    assert str(missing.value) == "results/runs/norms/bn/s9.json: record not found"
    (tmp_path / "s0.json").write_text(json.dumps({"schema": 1}))
    with pytest.raises(NormlabError) as broken:
        cli.main(["show", "s0.json"])
    assert str(broken.value).startswith("s0.json: missing key") and "\n" not in str(broken.value)


@pytest.mark.e2e
def test_dvc_plots_draws_a_study_run_beside_the_experiment_in_the_workspace(pipeline, tmp_path):
    repo = shutil.copytree(pipeline, tmp_path / "repo", symlinks=True)  # the shared run stays
    record = _record(tmp_path, epochs=2)
    show.show(record.source, io.StringIO(), repo / show.FOLDER)
    ours = ".normlab/dvclive/norms/bn/s0/plots/metrics/test/acc.tsv"
    theirs = "dvclive/plots/metrics/test/acc.tsv"
    drawn = json.loads(sh(repo, "dvc", "plots", "show", "--json", theirs, ours))["data"]
    values = {target: drawn[target][0]["content"]["data"]["values"] for target in (theirs, ours)}
    assert [float(v["acc"]) for v in values[ours]] == [97.0, 98.0]
    assert len(values[theirs]) == 2  # the experiment's two epochs, on the same page
    # beside a committed experiment's curves (HEAD's; any `dvc exp` name works the same way)
    folder = ".normlab/dvclive/norms/bn/s0/plots"
    diff = json.loads(
        sh(repo, "dvc", "plots", "diff", "HEAD", "--json", "--targets", "dvclive/plots", folder)
    )
    assert ours in diff["data"] and diff["data"][theirs][0]["revisions"] == ["workspace", "HEAD"]
    assert "errors" not in diff or not diff["errors"]
    assert "nothing to commit" in sh(repo, "git", "status")  # git ignores .normlab/
