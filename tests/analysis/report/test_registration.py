"""v2 in the report and in `plan`: every verdict line says what it is a verdict on, a line per
claim of what we can now say, the forest plot (effects in margins, the claim's direction
positive, byte-identical rebuilds), and overlap computed from the records' times."""

import dataclasses

import pytest

from helpers import accs, fake_record, spread, v2, view
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
    return registration.Registered(tests, {"fake": view(runs)}, {})


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
    """Every v2 test gets one of the words; the pilot is shown for every study that has one."""
    done = report_cli._done(st.RESULTS)
    reg = registration.prepare(done, report_cli.overrides.base_params(), schema.load().reported)
    for row in registration.judge_all(reg):
        word = row.verdict.word
        assert word.startswith(retest.WORDS), (row.test.id, word)
        assert (word == retest.WORDS[4]) == (not row.test.run)
        assert (row.pilot is None) == (row.test.study == "s002-cohort")


def test_a_records_times_reach_the_report_and_old_records_have_none():
    raw = fake_record("fake", "A", 0, 99.3)
    assert (vd.run_of(raw).started, vd.run_of(raw).ended) == ("", "")
    times = {"started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T01:00:00+00:00"}
    run = vd.run_of(raw | times)
    assert (run.started, run.ended) == (times["started"], times["ended"])
