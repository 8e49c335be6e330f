"""verdicts: did-not-learn, Welch, Holm, TOST and the minimum detectable difference, by hand.

`fake_record` (tests/helpers.py) builds a run record in memory."""

import math

import pytest
from scipy import stats

from helpers import fake_record
from normlab.analysis.claims import notation
from normlab.analysis.claims import stats as st
from normlab.analysis.claims import verdicts as vd


def runs_of(variant: str, accs: list[float], **kw) -> list[vd.Outcome]:
    return [vd.run_of(fake_record("fake", variant, s, a, **kw)) for s, a in enumerate(accs)]


def test_holm_matches_a_hand_computation():
    # sorted: 0.005·4 = 0.02; 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → max(0.06, 0.04)
    assert st.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN (an untestable pair) is left out of the family: m = 2
    adjusted = st.holm([0.02, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert math.isnan(adjusted[1])
    assert st.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_welch_by_hand():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]  # means 2 and 4, variances 1 and 4
    d = st.welch(a, b)
    se = math.sqrt(1 / 3 + 4 / 3)
    df = (5 / 3) ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)
    half = stats.t.ppf(0.975, df) * se
    assert d.estimate == pytest.approx(-2.0) and d.se == pytest.approx(se)
    assert d.df == pytest.approx(df) and (d.low, d.high) == pytest.approx((-2 - half, -2 + half))
    assert d.p == pytest.approx(2 * stats.t.sf(2 / se, df))


def test_minimum_detectable_difference_by_hand():
    # sd 0.1 in both groups of 3: (t(0.975, 4) + t(0.80, 4)) · 0.1 · √(2/3) = 3.7174 · 0.08165
    d = st.welch([99.2, 99.3, 99.4], [99.0, 99.1, 99.2])
    assert d.mdd == pytest.approx((2.776445 + 0.940965) * 0.1 * math.sqrt(2 / 3), rel=1e-4)
    assert d.mdd == pytest.approx(0.3035, abs=1e-4)


def test_tost_needs_the_90_percent_ci_inside_the_margin():
    a, b = [99.30, 99.32, 99.31, 99.33], [99.31, 99.29, 99.30, 99.32]
    d = st.welch(a, b)
    assert st.inside(d, -0.1, 0.1) < 0.05  # clearly within ±0.1
    assert st.inside(d, -0.001, 0.001) > 0.05  # not shown within ±0.001
    far = st.welch([v + 1 for v in a], b)
    assert st.outside(far, -0.1, 0.1) < 0.05 and st.inside(far, -0.1, 0.1) > 0.5


@pytest.mark.parametrize(
    "acc, loss, why",
    [
        (99.3, 0.02, None),
        (11.35, 2.30, "stayed at chance"),
        (14.9, 2.2, "stayed at chance"),
        (10.32, 1.6e12, "diverged"),
        (50.0, math.inf, "diverged"),
        (15.1, 2.1, None),
    ],
)
def test_did_not_learn(acc, loss, why):
    assert vd.failure(acc, loss, 10) == why


def test_a_run_that_learned_then_lost_it_fell_back_to_chance():
    # Fashion-MNIST, norm=none: 73 % at epoch 2, 10 % from epoch 4 on
    assert vd.failure(10.0, 2.30, 10, best_acc=73.31) == "fell back to chance"
    assert vd.failure(10.0, 2.30, 10, best_acc=11.0) == "stayed at chance"


def test_one_seed_at_chance_is_named_and_not_averaged_in():
    none = vd.group("none", runs_of("none", [99.2, 99.25, 11.35]), [99.2, 99.25, 11.35])
    bn = vd.group("bn", runs_of("bn", [99.3, 99.35, 99.28]), [99.3, 99.35, 99.28])
    assert none.failed_text() == "1 of 3 seeds stayed at chance, 11.35 % (seed 2)"
    assert list(none.usable) == [99.2, 99.25]
    diff = st.welch(none.usable, bn.usable)
    text = vd.compare(none, bn, diff, st.holm([diff.p])[0])
    assert "1 of 3 seeds stayed at chance, 11.35 % (seed 2) (did not learn)" in text
    assert "the 2 that learned are compared" in text
    assert abs(diff.high - diff.low) < 1  # not a CI of ±124 points
    assert "smallest difference n = 2 vs 3 could detect" in text


def test_a_variant_where_no_seed_learned_is_compared_on_all_its_runs():
    accs = [11.35, 11.36, 11.34]
    inorm = vd.group("in", runs_of("in", accs), accs)
    bn = vd.group("bn", runs_of("bn", [99.3, 99.35, 99.28]), [99.3, 99.35, 99.28])
    diff = st.welch(inorm.usable, bn.usable)
    text = vd.compare(inorm, bn, diff, diff.p)
    assert text.startswith("**in** is lower than **bn** by 87.96 points")
    assert "in did not learn: 3 of 3 seeds stayed at chance" in text


def test_zero_spread_is_not_testable_rather_than_certain():
    d = st.welch([99.0, 99.0], [99.0, 99.0])
    assert not d.testable and "no spread between seeds" in notation.numbers(d, math.nan)


def test_mean_and_spread_are_written_only_where_there_is_a_spread():
    assert notation.pm(st.describe([99.30, 99.34, 99.32])) == "99.32 ± 0.02"
    assert notation.pm(st.describe([99.36])) == "99.36"  # one run has no std to give
    assert notation.pm(st.describe([])) == "–"
