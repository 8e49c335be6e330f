"""claims v3 (studies/claims-v3.yaml): the file is read as strictly as v2's, with v3's kinds
only; a bad file or a test its study cannot run is one line naming file and key; the committed
registration reads and fits studies/small-batch.yaml. Each kind's words on fake runs made for
it, its slope and p checked against scipy and statsmodels fitted here independently."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
import yaml
from scipy import stats as sp

from helpers import ALPHA, BASE, POWER, accs, make, v2, v3, view
from normlab.analysis.claims import lines, retest, stats
from normlab.analysis.claims import registered as rg
from normlab.analysis.study import plan as plan_mod
from normlab.errors import NormlabError

SLOPE = {
    "kind": "slope",
    "direction": "down",
    "variants": ["bn-bs2", "bn-bs4", "bn-bs8"],
    "margin": 0.1,
    "seeds": [0, 1, 2],
    "n": 3,
}
TOP = {"version": 3, "alpha": 0.05, "power": 0.8}


def write(tmp_path, top: dict, test: dict):
    path = tmp_path / "claims-v3.yaml"
    fields = {k: v for k, v in test.items() if v is not None}
    path.write_text(yaml.safe_dump(top | {"claims": [BASE | {"file": "small-batch"} | fields]}))
    return path


def one_line_error(path) -> str:
    with pytest.raises(NormlabError) as err:
        rg.load(path)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"kind": "steeper"},
            "claims[0] (id x1): Input tag 'steeper' found using 'kind' does not match any of "
            "the expected tags: 'slope', 'flat', 'higher-by'",
        ),
        ({"kind": "higher"}, "claims[0] (id x1): Input tag 'higher' found using 'kind'"),
        ({"kind": None}, "claims[0] (id x1): missing key 'kind' (allowed: slope, flat, higher-by)"),
        ({"direction": None}, "claims[0] (id x1).direction: Field required"),
        ({"direction": "up"}, "claims[0] (id x1).direction: Input should be 'down'"),
        ({"margin": 0}, "claims[0] (id x1).margin: Input should be greater than 0"),
        ({"margin": -0.1}, "claims[0] (id x1).margin: Input should be greater than 0"),
        ({"margin": None}, "claims[0] (id x1).margin: Field required"),
        (
            {"variants": ["bn-bs2"]},
            "claims[0] (id x1): 'variants' must name at least 2 variants (one per batch size)",
        ),
        (
            {"variants": ["bn-bs2", "bn-bs4", "bn-bs2"]},
            "claims[0] (id x1): 'bn-bs2' is given twice (allowed: one variant per batch size)",
        ),
        (
            {"variants": None, "pairs": [["bn-bs2", "bn-bs4"]]},
            "claims[0] (id x1): kind 'slope' reads one variant per batch size: use 'variants'",
        ),
        (
            {"kind": "higher-by", "direction": None},
            "claims[0] (id x1): 'variants' must be [A, B] for this kind (or use 'pairs')",
        ),
        ({"kind": "flat"}, "claims[0] (id x1).direction: unknown key (a typo?)"),
        ({"file": "mine"}, "claims[0] (id x1).file: Input should be 'default', 'seeds' or"),
        ({"n": 4}, "claims[0] (id x1): 3 seeds for n = 4 (allowed: n seeds)"),
    ],
)
def test_a_bad_v3_test_is_one_line_naming_file_and_key(tmp_path, change, expected):
    path = write(tmp_path, TOP, SLOPE | change)
    message = one_line_error(path)
    assert message.startswith(f"{path}: {expected}"), message


@pytest.mark.parametrize(
    "top, expected",
    [
        (TOP | {"version": 4}, "version: 4 (allowed: 2, 3)"),
        (TOP | {"pilot_seeds": [0, 1, 2]}, "pilot_seeds: unknown key (a typo?)"),
        (TOP | {"alpha": 0.5}, "alpha: Input should be less than 0.5"),
        ({k: v for k, v in TOP.items() if k != "version"}, "version: Field required"),
    ],
)
def test_a_bad_v3_file_is_one_line_naming_file_and_key(tmp_path, top, expected):
    path = write(tmp_path, top, SLOPE)
    assert one_line_error(path) == f"{path}: {expected}"


def test_a_v3_kind_in_a_v2_file_is_one_line_listing_v2s_kinds(tmp_path):
    path = write(
        tmp_path, {"version": 2, "pilot_seeds": [0, 1, 2], "alpha": 0.05, "power": 0.8}, SLOPE
    )
    message = one_line_error(path)
    assert "Input tag 'slope' found using 'kind' does not match" in message
    assert "'higher'" in message and "'higher-by'" not in message


SMALL = plan_mod.load_file(rg.STUDY_FILES["small-batch"]).studies


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"variants": ["bn-bs2", "bn-bs4", "bn-bs16"]},
            ".variants: 'bn-bs16' is not a variant of study small-batch (variants: bn-bs2,",
        ),
        (
            {"variants": ["bn-bs2", "gn-bs2", "bn-bs8"]},
            ".variants: 'bn-bs2' and 'gn-bs2' both train at batch size 2 (allowed: one variant "
            "per batch size)",
        ),
        ({"seeds": [0, 1, 3]}, ".seeds: seed 3 of bn-bs2 is not planned in study small-batch"),
        (
            {"study": "batch"},
            ".study: 'batch' is not a study of studies/small-batch.yaml (studies: small-batch-lr, "
            "small-batch)",
        ),
    ],
)
def test_a_v3_test_its_study_cannot_run_is_one_line(tmp_path, change, expected):
    fields = BASE | {"file": "small-batch", "study": "small-batch"} | SLOPE | change
    registration = rg.RegistrationV3.model_validate(TOP | {"claims": [fields]})
    with pytest.raises(NormlabError) as err:
        rg.check_studies(registration, {"small-batch": SMALL}, tmp_path / "c.yaml")
    assert str(err.value).startswith(f"{tmp_path / 'c.yaml'}: claims[0] (id x1){expected}")


def test_the_v3_registration_reads_and_fits_the_small_batch_study():
    registration = rg.load(rg.FILE_V3)
    files = {k: plan_mod.load_file(p).studies for k, p in rg.STUDY_FILES.items()}
    rg.check_studies(registration, files, rg.FILE_V3)
    assert registration.version == 3 and registration.pilot_seeds == []
    assert [(t.id, t.kind, t.margin, t.seeds, t.n) for t in registration.claims] == [
        ("small-a-bn", "slope", 0.1, [0, 1, 2], 3),
        ("small-a-gn", "flat", 0.1, [0, 1, 2], 3),
        ("small-b", "higher-by", 0.1, [0, 1, 2], 3),
    ]
    assert registration.claims[0].direction == "down"
    assert registration.claims[2].units == [("gn-bs2", "bn-bs2")]
    assert rg.load().version == 2  # the default is still v2's file, read as before


# --- judging: each kind's words, and its numbers against scipy and statsmodels ------------------


def three(centre: float, sd: float = 0.02) -> list[float]:
    """Three values around `centre` with sample sd `sd`, exactly."""
    return [centre - sd, centre, centre + sd]


def line_runs(errors: dict[int, float], sd: float = 0.02) -> list:
    """Variants A, B, C … at these batch sizes (not in their names: x comes from the record),
    seeds 0–2 each, final test error around `errors[batch]`."""
    runs = []
    for name, (batch, err) in zip("ABCD", errors.items(), strict=False):
        runs += make(name, three(100 - err, sd), lambda a: {"acc": a}, batch_size=batch)
    return runs


SLOPE_DOWN = {"kind": "slope", "direction": "down", "variants": ["A", "B", "C"]}
FLAT = {"kind": "flat", "variants": ["A", "B", "C"]}
HIGHER_BY = {"kind": "higher-by", "variants": ["A", "B"]}


def judge(test, runs) -> retest.Judged:
    return retest.judge(test, view(runs), ALPHA, POWER)


def test_a_slope_is_linregress_and_statsmodels_ols_on_log2_batch_and_error():
    """The Part's slope, se, CI and p are those of an OLS fit done here independently; its p
    for the claim (slope < 0) is the one-sided t, its p for equivalence TOST at ±margin."""
    runs = line_runs({2: 0.95, 4: 0.70, 8: 0.52}, sd=0.05)
    found = judge(v3(**SLOPE_DOWN), runs)
    part = found.parts[0]
    x = np.log2([r.params["recipe"]["batch_size"] for r in runs])
    y = 100 - np.array([r.acc for r in runs])
    fit = sp.linregress(x, y)
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    assert part.diff.estimate == pytest.approx(fit.slope) == pytest.approx(ols.params[1])
    assert part.diff.se == pytest.approx(ols.bse[1]) and part.diff.df == len(runs) - 2
    assert part.diff.p == pytest.approx(ols.pvalues[1])
    low, high = ols.conf_int(0.05)[1]
    assert (part.diff.low, part.diff.high) == (pytest.approx(low), pytest.approx(high))
    t = ols.tvalues[1]
    assert part.p_for == pytest.approx(sp.t.cdf(t, ols.df_resid))  # one-sided: slope < 0
    tost = max(
        sp.t.sf((fit.slope + 0.1) / fit.stderr, len(runs) - 2),
        sp.t.cdf((fit.slope - 0.1) / fit.stderr, len(runs) - 2),
    )
    assert part.p_equal == pytest.approx(tost)
    assert found.word == "supported" and "n = 3 per batch size" in found.detail


@pytest.mark.parametrize(
    "errors, word",
    [
        ({2: 0.90, 4: 0.70, 8: 0.50}, "supported"),  # BN's error grows as the batch shrinks
        ({2: 0.50, 4: 0.50, 8: 0.50}, "contradicted: equivalent within ±0.1 point per doubling"),
        ({2: 0.50, 4: 0.70, 8: 0.90}, "contradicted"),  # the 95 % CI wholly above 0
    ],
)
def test_slope_down_gives_its_words(errors, word):
    found = judge(v3(**SLOPE_DOWN), line_runs(errors))
    assert found.word.startswith(word) and (word != "contradicted" or found.word == word), (
        found.word,
        found.detail,
    )


@pytest.mark.parametrize(
    "errors, word",
    [
        ({2: 0.50, 4: 0.51, 8: 0.49}, "supported"),  # GN flat: TOST within ±0.1 per doubling
        ({2: 1.10, 4: 0.80, 8: 0.50}, "contradicted"),  # −0.3 a doubling: wholly beyond −0.1
        ({2: 0.20, 4: 0.50, 8: 0.80}, "contradicted"),  # either way
    ],
)
def test_flat_gives_its_words(errors, word):
    runs = line_runs(errors)
    found = judge(v3(**FLAT), runs)
    assert found.word == word, (found.word, found.detail)
    part = found.parts[0]
    fit = sp.linregress(
        np.log2([r.params["recipe"]["batch_size"] for r in runs]), [100 - r.acc for r in runs]
    )
    df = len(runs) - 2
    tost = max(
        sp.t.sf((fit.slope + 0.1) / fit.stderr, df), sp.t.cdf((fit.slope - 0.1) / fit.stderr, df)
    )
    assert part.p_for == pytest.approx(tost)
    if word == "contradicted":  # the 95 % CI misses ±0.1 entirely
        half = sp.t.ppf(0.975, df) * fit.stderr
        assert fit.slope + half < -0.1 or fit.slope - half > 0.1
    else:
        assert tost < ALPHA


def test_a_line_too_noisy_to_tell_says_the_n_that_would_decide_it():
    found = judge(v3(**FLAT), line_runs({2: 0.55, 4: 0.50, 8: 0.52}, sd=0.3))
    assert found.word.startswith("not decided (needs n = "), found.word
    n = int(found.word.removeprefix("not decided (needs n = ").split()[0])
    assert n > 3 and found.word.endswith(" per variant)")


def test_a_line_waits_for_all_its_records_of_the_registered_seeds():
    runs = line_runs({2: 0.9, 4: 0.7, 8: 0.5})
    assert judge(v3(**SLOPE_DOWN), runs[1:]).word == "waiting for runs (8 of 9 records)"
    later = make("A", [50.0], lambda a: {"acc": a}, first_seed=3, batch_size=2)
    assert judge(v3(**SLOPE_DOWN), runs + later).detail == judge(v3(**SLOPE_DOWN), runs).detail


def welch_shifted(a, b, margin: float, side: str) -> float:
    """scipy's one-sided Welch p of 'mean(a) − mean(b) vs margin' (a shifted by the margin)."""
    return sp.ttest_ind(np.array(a) - margin, b, equal_var=False, alternative=side).pvalue


@pytest.mark.parametrize(
    "a, b, word",
    [
        (99.60, 99.30, "supported"),  # GN beats BN by 0.3 > 0.1
        (99.35, 99.30, "contradicted: equivalent within ±0.1 point"),  # 0.05: below, and TOST
        (99.00, 99.30, "contradicted"),  # BN higher: below the margin, not within ±0.1
        (99.41, 99.30, "not decided"),  # 0.11 ± a seed spread: neither bound clears 0.1
    ],
)
def test_higher_by_gives_its_words_from_welch_against_the_margin(a, b, word):
    runs = accs("A", three(a)) + accs("B", three(b))
    found = judge(v3(**HIGHER_BY), runs)
    assert found.word.startswith(word) and (word != "contradicted" or found.word == word)
    part = found.parts[0]
    values = [r.acc for r in runs if r.variant == "A"], [r.acc for r in runs if r.variant == "B"]
    assert part.p_for == pytest.approx(welch_shifted(*values, 0.1, "greater"))
    assert part.p_against == pytest.approx(welch_shifted(*values, 0.1, "less"))


def test_higher_by_is_contradicted_by_the_one_sided_bound_not_the_two_sided_ci():
    """The header's rule: the upper ONE-sided 95 % bound below the margin contradicts, where
    v2's `higher` would ask the two-sided 95 % CI to miss its band."""
    a, b = three(99.30, 0.05), three(99.30, 0.05)
    a = [v + 0.001 for v in a]  # A − B = 0.001; the one-sided bound is below 0.1
    found = judge(v3(**HIGHER_BY), accs("A", a) + accs("B", b))
    part = found.parts[0]
    assert part.p_against < ALPHA < 2 * part.p_against  # doubled (two-sided) it would not be
    assert found.word.startswith("contradicted")


def test_a_v3_verdict_line_says_its_metric_margin_and_claim():
    test = v3(**SLOPE_DOWN)
    assert lines.metric_text(test).startswith("OLS slope of final test error")
    assert lines.margin_text(test) == "±0.1 point per doubling of the batch"
    assert lines.claim_text(test) == "slope < 0"
    assert lines.claim_text(v3(**FLAT)) == "|slope| < 0.1"
    assert lines.claim_text(v3(**HIGHER_BY)) == "A − B > 0.1"
    assert lines.claim_text(v2(kind="higher", variants=["A", "B"], margin=0.1)) == ""


def test_a_slope_with_one_batch_size_or_no_spread_is_not_testable():
    flat_line = stats.slope([1, 1, 1], [0.5, 0.6, 0.7], (3,))
    assert not flat_line.testable and math.isnan(flat_line.estimate)
    exact = stats.slope([1, 2, 3], [0.5, 0.6, 0.7], (1, 1, 1))
    assert not exact.testable and exact.estimate == pytest.approx(0.1)
