"""v2 and v3 in the report and in `plan`: every verdict line says what it is a verdict on, a line
per claim of what we can now say, the forest plot (effects in margins, the claim's direction
positive, byte-identical rebuilds), v3's power at its budget's n, and overlap computed from the
records' times."""

import dataclasses
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sp
from statsmodels.stats.power import TTestIndPower

from helpers import accs, fake_record, make, spread, v2, v3, view
from normlab.analysis.claims import registered as rg
from normlab.analysis.claims import retest, schema, stats, tally
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report import cli as report_cli
from normlab.analysis.report import overlap, registration
from normlab.analysis.report.figures import forest
from normlab.analysis.study import plan as st

REG = {"version": 2, "pilot_seeds": [0, 1, 2], "alpha": 0.05, "power": 0.8}


def make_registration(*tests: dict) -> rg.Registration:
    base = {"source": "999 (a)", "text": "GN beats BN", "file": "seeds", "study": "fake"}
    return rg.Registration.model_validate(REG | {"claims": [base | t for t in tests]})


HIGHER = {"id": "t1", "kind": "higher", "variants": ["A", "B"], "margin": 0.1}


def fake_registered(runs) -> registration.Registered:
    tests = make_registration(
        HIGHER | {"seeds": [3, 4, 5, 6], "n": 4},
        {"id": "t2", "kind": "similar", "variants": ["A", "B"], "margin": 0.1}
        | {"seeds": [], "n": 30, "run": False, "why_not_run": "over budget"},
    )
    return registration.Registered((tests,), {"fake": view(runs)}, {})


RUNS = (
    accs("A", [99.5, 99.55, 99.6])
    + accs("B", [99.3, 99.32, 99.28])
    + accs("A", spread(99.6, 0.02), first_seed=3)
    + accs("B", spread(99.3, 0.02), first_seed=3)
)


def test_every_v2_line_says_its_metric_study_seeds_n_and_margin():
    registered = fake_registered(RUNS)
    rows = registration.judge_all(registered)
    text = registration.section([], rows, registered)
    first, second = (line for line in text.splitlines() if line.startswith("  - v2"))
    for part in (
        "final test accuracy (last epoch)",
        "study `fake` (a fake study)",
        "seeds 3–6",
        "n = 4 per variant (the pilot gives",
        "margin ±0.1 point",
        "**supported**",
        "On the pilot (seeds 0–2, for comparison only): supported",
    ):
        assert part in first, part
    assert "no seeds registered; n = 30 per variant" in second
    assert "**not run**: not decided: needs n = 30 per variant; not run: over budget" in second


def test_the_summary_says_per_claim_what_we_can_now_say(tmp_path):
    rows = registration.judge_all(fake_registered(RUNS))
    text = registration.summary([], rows, tmp_path)
    claim = next(line for line in text.splitlines() if line.startswith("- **999 (a)**"))
    assert "t1 holds on seeds 3–6 (on the pilot: supported)" in claim
    assert "t2 cannot be decided within the budget (needs n = 30 per variant)" in claim
    assert (tmp_path / registration.FOREST).exists() and f"]({registration.FOREST})" in text


def test_an_undecided_test_says_the_n_that_would_decide_it_once(tmp_path):
    noisy = RUNS[:6] + accs("A", spread(99.4, 0.3), first_seed=3) + accs("B", spread(99.35, 0.3), 3)
    rows = registration.judge_all(fake_registered(noisy))
    text = registration.summary([], rows, tmp_path)
    said = re.search(r"t1 is undecided on its 4 seeds \(needs n = (\d+) per variant\)", text)
    assert said and int(said[1]) > 4 and "((" not in text


def test_a_report_with_v2_rebuilds_byte_for_byte(tmp_path):
    inputs = report_cli.Inputs((view(RUNS),), registered=fake_registered(RUNS))
    for out in (tmp_path / "a", tmp_path / "b"):
        report_cli.build(inputs, out)
    readme = (tmp_path / "a" / "README.md").read_text()
    assert "## Claims, version 1 and version 2" in readme and "What we can now say" in readme
    for name in ("README.md", registration.FOREST):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize(
    "fields, difference, drawn",
    [
        (HIGHER, 0.25, 2.5),  # A − B = 2.5 margins, the claim's way
        ({"kind": "learns-faster", "variants": ["A", "B"], "k": 3, "margin": 0.2}, -0.4, 2.0),
        ({"kind": "costs", "variants": ["A", "B"], "range": [1.0, 2.0]}, 1.5, 0.0),  # centre
        ({"kind": "not-worse", "variants": ["A", "B"], "margin": 0.1}, -0.1, -1.0),
    ],
)
def test_the_forest_draws_effects_in_margins_the_claims_way_positive(fields, difference, drawn):
    test = v2(**fields)
    diff = stats.Diff(difference, 0.0, 0.0, 0.01, 0.05, 6.0, (4, 4), 0.0)
    effect, low, high = forest.interval(test, diff, 0.90)
    assert effect == pytest.approx(drawn) and low < effect < high


def test_the_forest_has_a_row_per_pair_with_pilot_and_confirmation(tmp_path):
    rows = registration.judge_all(fake_registered(RUNS))
    drawn = forest.rows([(r.verdict, r.pilot) for r in rows])
    assert [label for label, *_ in drawn] == ["t1: A − B", "t2: A − B"]
    assert drawn[0][2] is not None and drawn[0][3] is not None  # both drawn
    assert drawn[1][2] is None and drawn[1][3] is not None  # not run: its pilot only


def timed(run, host: str, start: str, end: str):
    return dataclasses.replace(run, host=host, started=start, ended=end)


def test_overlap_comes_from_the_times_and_old_records_say_what_is_unknown():
    a, b, c, d = accs("A", [99.3, 99.3, 99.3, 99.3])
    runs = [
        timed(a, "h1", "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00"),
        timed(b, "h1", "2026-01-01T00:30:00+00:00", "2026-01-01T02:00:00+00:00"),
        timed(c, "h2", "2026-01-01T00:00:00+00:00", "2026-01-01T03:00:00+00:00"),  # elsewhere
        dataclasses.replace(d, concurrent=3),  # an old record: only its count at start
    ]
    assert [overlap.peak(r, runs) for r in runs] == [2, 2, 1, 0]
    text = overlap.provenance(runs)
    assert text.startswith("overlap, from start and end times: 3 of 4 runs have them; 2 of them")
    assert "For the other 1 (records before the times), only `concurrent` is known" in text
    shared = overlap.shared(runs)
    assert "1 run started while up to 2 others trained on their machine" in shared
    assert "2 runs overlapped others, up to 2 at once (from times)" in shared


def test_back_to_back_runs_do_not_overlap():
    a, b = accs("A", [99.3, 99.3])
    runs = [
        timed(a, "h", "2026-01-01T00:00:00+00:00", "2026-01-01T01:00:00+00:00"),
        timed(b, "h", "2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"),
    ]
    assert [overlap.peak(r, runs) for r in runs] == [1, 1] and overlap.shared(runs) == ""


def test_plan_lists_each_claim_test_with_its_n_and_runs_done():
    spec = st.load_file(rg.STUDY_FILES["seeds"])
    plan = st.plan(spec, report_cli.overrides.base_params(), ["s002"])
    done = {r.key for r in plan.runs if r.variant == "bn" and r.seed == 3}
    lines = tally.plan_lines(plan, done)
    assert (
        "claim 002a (s002, costs): n = 3 per variant registered, seeds 3–5: 1/6 runs done" in lines
    )
    assert any(line.startswith("claim 002b (s002, steadier): n = 21") for line in lines)
    assert not any("s002-cohort" in line for line in lines)  # not a study of this plan


def test_the_committed_registration_is_judged_and_compared_with_its_pilot():
    """Every v2 and v3 test gets one of the words; the pilot is shown for every v2 study that
    has one; every v3 test has the power of its budget's n, from the batch study's records."""
    done = report_cli._done(st.RESULTS)
    reg = registration.prepare(done, report_cli.overrides.base_params(), schema.load().reported)
    rows = registration.judge_all(reg)
    assert {row.version for row in rows} == {2, 3}
    for row in rows:
        word = row.verdict.word
        assert word.startswith(retest.WORDS), (row.test.id, word)
        assert (word == retest.WORDS[4]) == (not row.test.run)
        assert (row.pilot is None) == (row.test.study == "s002-cohort" or row.version == 3)
        assert (row.spent is not None) == (row.version == 3), row.test.id


def test_a_records_times_reach_the_report_and_old_records_have_none():
    raw = fake_record("fake", "A", 0, 99.3)
    assert (vd.run_of(raw).started, vd.run_of(raw).ended) == ("", "")
    times = {"started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T01:00:00+00:00"}
    run = vd.run_of(raw | times)
    assert (run.started, run.ended) == (times["started"], times["ended"])


# --- version 3 ------------------------------------------------------------------------------------

REG3 = {"version": 3, "alpha": 0.05, "power": 0.8}
V3_BASE = {"source": "a paper", "text": "BN's error grows as the batch shrinks", "file": "seeds"}
V3_TESTS = [
    {"id": "s1", "kind": "slope", "direction": "down", "variants": ["P", "Q", "R"]},
    {"id": "f1", "kind": "flat", "variants": ["P", "Q", "R"], "text": "no change"},
    {"id": "h1", "kind": "higher-by", "variants": ["R", "P"], "text": "R beats P"},
]


def with_v3(runs) -> registration.Registered:
    """fake_registered's v2 tests, and three v3 tests on the same fake study (variants P, Q, R:
    v2's A and B are at one batch size)."""
    tests = [
        V3_BASE | {"study": "fake", "margin": 0.1, "seeds": [0, 1, 2], "n": 3} | t for t in V3_TESTS
    ]
    v3 = rg.RegistrationV3.model_validate(REG3 | {"claims": tests})
    return dataclasses.replace(fake_registered(runs), files=(fake_registered(runs).files[0], v3))


def line_runs(errors: dict[str, tuple[int, float]]) -> list:
    return [
        r
        for name, (batch, err) in errors.items()
        for r in make(
            name,
            [100 - err - 0.02, 100 - err, 100 - err + 0.02],
            lambda a: {"acc": a},
            batch_size=batch,
        )
    ]


def test_v3_lines_say_their_metric_seeds_n_margin_and_claim_and_wait_for_records():
    registered = with_v3(RUNS)
    rows = registration.judge_all(registered)
    assert [r.version for r in rows] == [2, 2, 3, 3, 3]
    text = registration.section([], rows, registered)
    assert text.startswith("## Claims, versions 1, 2 and 3")
    assert "Version 3 (`studies/claims-v3.yaml`" in text and "record of study `fake`" in text
    s1, f1, h1 = (line for line in text.splitlines() if line.startswith("  - v3"))
    for part in (
        "  - v3 **s1** (slope; OLS slope of final test error (100 − accuracy) on log2(batch size)",
        "study `fake` (a fake study); seeds 0–2; n = 3 per variant (the budget's",
        "margin ±0.1 point per doubling of the batch; claim: slope < 0)",
        "**waiting for runs (0 of 9 records)**",
    ):
        assert part in s1, part
    assert "— *no change*" in f1 and "claim: |slope| < 0.1" in f1  # its own text, not s1's
    assert "claim: R − P > 0.1" in h1 and "(0 of 6 records)" in h1
    said = registration.summary([], rows, Path(tempfile.mkdtemp()))
    assert "v3: its registered seeds" in said
    assert "s1: nothing new yet, waiting for runs (0 of 9 records)" in said


def test_v3_tests_get_their_words_and_forest_rows_once_their_records_land(tmp_path):
    lines_ = line_runs({"P": (2, 0.9), "Q": (4, 0.7), "R": (8, 0.5)})
    rows = registration.judge_all(with_v3(RUNS + lines_))
    words = {r.test.id: r.verdict.word for r in rows if r.version == 3}
    assert words["s1"] == "supported"
    assert words["f1"] == "contradicted"  # −0.2 a doubling: beyond the ±0.1 it claims
    assert words["h1"] == "supported"  # R (batch 8) − P (batch 2) = +0.4 > 0.1
    drawn = forest.rows([(r.verdict, r.pilot) for r in rows])
    by_label = {label: (test, mine) for label, test, mine, _ in drawn}
    test, mine = by_label["s1: slope over P, Q, R"]
    effect, low, high = forest.interval(test, mine, 0.90)
    assert effect == pytest.approx(2.0) and low < effect < high  # −0.2 a doubling = 2 margins
    test, mine = by_label["h1: R − P"]
    assert forest.interval(test, mine, 0.90)[0] == pytest.approx(4.0)
    registration.summary([], rows, tmp_path)
    assert (tmp_path / registration.FOREST).exists()


@pytest.mark.parametrize(
    "fields, difference, drawn",
    [
        ({"kind": "slope", "direction": "down", "variants": ["A", "B", "C"]}, -0.3, 3.0),
        ({"kind": "flat", "variants": ["A", "B", "C"]}, -0.05, -0.5),  # the band ±1 itself
        ({"kind": "higher-by", "variants": ["A", "B"]}, 0.15, 1.5),  # the claim: right of +1
    ],
)
def test_the_forest_draws_v3_effects_in_margins_the_claims_way_positive(fields, difference, drawn):
    test = v3(**fields)
    diff = stats.Diff(difference, 0.0, 0.0, 0.01, 0.05, 7.0, (3, 3, 3), 0.0)
    effect, low, high = forest.interval(test, diff, 0.90)
    assert effect == pytest.approx(drawn) and low < effect < high


def test_plan_lists_the_v3_tests_with_their_n_and_runs_done():
    spec = st.load_file(rg.STUDY_FILES["small-batch"])
    plan = st.plan(spec, report_cli.overrides.base_params(), ["small-batch"])
    done = {r.key for r in plan.runs if r.variant == "bn-bs2" and r.seed == 0}
    lines = tally.plan_lines(plan, done)
    assert lines == [
        "claim small-a-bn (small-batch, slope): n = 3 per variant registered, seeds 0–2: "
        "1/9 runs done",
        "claim small-a-gn (small-batch, flat): n = 3 per variant registered, seeds 0–2: "
        "0/9 runs done",
        "claim small-b (small-batch, higher-by): n = 3 per variant registered, seeds 0–2: "
        "1/6 runs done",
    ]


def test_the_v3_power_is_at_the_batch_studys_spread_of_each_norm_at_batch_16():
    """The committed records of batch/{bn,gn}-bs16 read here directly: small-a-bn's power at
    n = 3 is the noncentral t of a slope over batch 2, 4, 8 at bn's sd; small-b's the
    two-sample one at gn's and bn's pooled sd (statsmodels' TTestIndPower)."""
    done = report_cli._done(st.RESULTS)
    reg = registration.prepare(done, report_cli.overrides.base_params(), schema.load().reported)
    rows = {r.test.id: r for r in registration.judge_all(reg) if r.version == 3}

    def sd(variant: str) -> float:
        paths = sorted((st.RESULTS / "runs" / "batch" / variant).glob("s[0-2].json"))
        return float(np.std([json.loads(p.read_text())["final"]["acc"] for p in paths], ddof=1))

    bn, gn = sd("bn-bs16"), sd("gn-bs16")
    slope = rows["small-a-bn"].spent
    assert slope.size.sd == pytest.approx(bn)
    df, se = 3 * 3 - 2, bn / np.sqrt(3 * 2.0)  # x = 1, 2, 3: Σ(x − x̄)² = 2
    found = sp.nct.sf(sp.t.ppf(0.95, df), df, 0.1 / se)
    assert slope.power[0][1] == pytest.approx(found)
    pooled = np.sqrt((gn**2 + bn**2) / 2)
    higher = rows["small-b"].spent
    theirs = TTestIndPower().power(
        effect_size=0.1 / pooled, nobs1=3, alpha=0.05, alternative="larger"
    )
    assert higher.size.sd == pytest.approx(pooled)
    assert higher.power[0][1] == pytest.approx(theirs, rel=1e-9)
    assert (
        "n = 3 per variant (the budget's, not a power choice; at the seed spread of its norm"
        in (registration.test_head(rows["small-b"], None))
    )
