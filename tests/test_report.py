"""The report on fake experiment records: tables and figures exist, verdicts follow the numbers."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from normlab import report

CLASSES = [str(i) for i in range(10)]
# variant → (norm, l1, l2, batch size); accuracies are drawn per variant below
VARIANTS = {"bn": ("bn", 0.0, 0.0, 128), "gn": ("gn", 0.0, 0.0, 128), "ln": ("ln", 0.0, 0.0, 128),
            "bn+l1": ("bn", 1e-4, 0.0, 128), "bn-bs16": ("bn", 0.0, 0.0, 16)}


def _png(seed: int) -> bytes:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.random.default_rng(seed).random((8, 8)))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def fake_records(acc: dict[str, list[float]], epochs: int = 3) -> report.Records:
    """Records as `collect` builds them, for the variants in `acc` (one run per listed accuracy)."""
    rows, curves, confusion, grids = [], [], {}, {}
    rng = np.random.default_rng(0)
    for variant, values in acc.items():
        norm, l1, l2, bs = VARIANTS[variant]
        for seed, a in enumerate(values):
            rows.append({"study": "fake", "variant": variant, "seed": seed, "acc": a, "best_acc": a + 0.1,
                         "loss": 0.03, "gap": -0.2, "abs_sum": 1200.0, "small_frac": 0.01, "seconds": 10.0,
                         "sec_per_epoch": 10.0 / epochs, "device": "cpu", "precision": "float32", "torch": "2.13.0+cpu", "host": "test host",
                         "command": "python -m normlab.study run --study fake", "time": 1000 + seed,
                         "name": f"fake-{variant}-s{seed}", "sha": "0" * 40, "p.dataset": "mnist",
                         "p.norm": norm, "p.groups": 4, "p.l1": l1, "p.l2": l2, "p.seed": seed,
                         "p.recipe.epochs": epochs, "p.recipe.batch_size": bs, "p.limit": 0})
            for split in ("train", "test"):
                for metric in ("loss", "acc"):
                    for epoch in range(1, epochs + 1):
                        value = a - 5 / epoch if metric == "acc" else 1 / epoch
                        curves.append({"study": "fake", "variant": variant, "seed": seed, "epoch": epoch,
                                       "split": split, "metric": metric, "value": value + rng.normal(0, 0.05)})
            for where, pct in report.FEATURES:
                for epoch in range(1, epochs + 1):
                    curves.append({"study": "fake", "variant": variant, "seed": seed, "epoch": epoch,
                                   "split": where, "metric": pct, "value": int(pct[1:]) / 50 + rng.normal(0, 0.01)})
        counts = rng.integers(0, 5, (10, 10)) + np.eye(10, dtype=int) * 990
        confusion[("fake", variant)] = pd.DataFrame(counts, index=CLASSES, columns=CLASSES)
        grids[("fake", variant)] = _png(len(grids))
    info = report.StudyInfo("a fake study", {v: f"norm={VARIANTS[v][0]}" for v in acc}, list(range(5)))
    return report.Records(pd.DataFrame(rows), pd.DataFrame(curves), confusion, grids, {"fake": info})


def verdict(verdicts: list[report.Verdict], a: str, b: str) -> report.Verdict:
    return next(v for v in verdicts if (v.a, v.b) == (a, b))


def test_identical_distributions_give_no_detectable_difference():
    same = [99.1, 99.3, 99.2, 99.4, 99.0]
    found = report.verdicts(fake_records({"bn": same, "gn": list(reversed(same))}).runs)
    v = verdict(found, "gn", "bn")
    assert v.diff == pytest.approx(0) and v.p == pytest.approx(1) and v.low < 0 < v.high
    assert not v.detected and "no detectable difference" in v.text()


@pytest.mark.parametrize("shift", [-1.0, +1.0])
def test_clearly_separated_variants_differ_with_the_right_sign(shift):
    bn = [99.1, 99.3, 99.2, 99.4, 99.0]
    found = report.verdicts(fake_records({"bn": bn, "ln": [a + shift for a in bn]}).runs)
    v = verdict(found, "ln", "bn")
    assert v.diff == pytest.approx(shift) and v.p < 0.001 and v.low * v.high > 0
    assert f"is {'higher' if shift > 0 else 'lower'} than **bn** by 1.00 points" in v.text()


def test_overlapping_noisy_variants_are_not_called_different():
    found = report.verdicts(fake_records({"bn": [99.0, 99.6, 98.9], "gn": [99.5, 98.8, 99.4]}).runs)
    assert "no detectable difference" in verdict(found, "gn", "bn").text()


def test_pairs_are_the_comparisons_a_user_makes():
    acc = {v: [99.0, 99.1] for v in VARIANTS}
    found = set(report.pairs(fake_records(acc).runs))
    # each norm vs bn at the same batch size; the penalized variant vs its unpenalized norm;
    # nothing across batch sizes or across both norm and penalty
    assert found == {("gn", "bn"), ("ln", "bn"), ("bn+l1", "bn")}


def test_pairs_ignore_where_and_how_fast_a_run_ran():
    """A study finished partly on a GPU and partly on a CPU still compares its variants."""
    runs = fake_records({"bn": [99.0, 99.1], "gn": [99.2, 99.3]}).runs
    runs["p.device"] = np.where(runs["variant"] == "bn", "cpu", "cuda")
    runs["p.engine.threads"] = np.where(runs["variant"] == "bn", 1, 0)
    assert report.pairs(runs) == [("gn", "bn")]


def test_build_writes_tables_figures_and_verdicts(tmp_path):
    acc = {"bn": [99.1, 99.3, 99.2], "gn": [99.2, 99.1, 99.3], "ln": [97.0, 97.2, 96.9],
           "bn+l1": [99.0, 99.2, 99.1], "bn-bs16": [98.0, 98.1, 98.2]}
    readme = report.build(fake_records(acc), tmp_path).read_text()
    for name in ("curves", "accuracy", "batch-size", "features", "confusion", "misclassified"):
        png = tmp_path / f"fake-{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"]({png.name})" in readme
    table = [line for line in readme.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(acc)  # header + one row per variant
    assert "| ln | norm=ln | 3/5 | 97.03 ± 0.15 |" in readme
    assert "**ln** is lower than **bn** by 2.17 points" in readme
    assert "**gn** vs **bn**: no detectable difference" in readme
    assert "# normlab results: mnist" in readme and "3 runs on cpu" not in readme  # 15 runs in all
    assert "15 runs on cpu" in readme
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert len(runs) == 15 and set(runs["variant"]) == set(acc)


def test_build_refuses_empty_records(tmp_path):
    empty = report.Records(pd.DataFrame(), pd.DataFrame(), {}, {}, {})
    with pytest.raises(report.NormlabError, match="no finished experiments"):
        report.build(empty, tmp_path)


def test_rebuilding_gives_the_same_files(tmp_path):
    """The report is derived data: two builds from the same records are byte-identical (figures too)."""
    records = fake_records({"bn": [99.1, 99.3, 99.2], "gn": [99.2, 99.1, 99.3]})
    for out in ("a", "b"):
        report.build(records, tmp_path / out)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files and files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
