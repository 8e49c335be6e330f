"""claims v2: each kind's words on fake runs made for it; each defect of v1 that v2 fixes, by a
case v1's measure gets wrong (so these tests fail on the old behaviour); only the registered
seeds count; v1 stays on seeds 0–2; a bad registration is one line naming file and key."""

import math

import numpy as np
import pytest
import yaml
from test_claims import make_claim

from helpers import ALPHA, BASE, POWER, accs, confusion, history, make, spread, v2, view
from normlab.analysis.claims import judge as cl
from normlab.analysis.claims import measures, pinned, retest
from normlab.analysis.claims import registered as rg
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report import writeups
from normlab.analysis.report.views import Inputs
from normlab.analysis.study import plan as plan_mod
from normlab.analysis.study.plan import Study
from normlab.errors import NormlabError


def judge(test, runs: list[vd.Outcome]) -> retest.Judged:
    return retest.judge(test, view(runs), ALPHA, POWER)


# --- every kind's words ------------------------------------------------------------------------

PAIR = {"variants": ["A", "B"], "margin": 0.1}
KINDS = {
    "higher": (
        {"kind": "higher"} | PAIR,
        {"supported": (99.6, 99.3), "contradicted": (99.3, 99.6), "equivalent": (99.3, 99.3)},
    ),
    "similar": (
        {"kind": "similar"} | PAIR,
        {"supported": (99.3, 99.3), "contradicted": (99.6, 99.3)},
    ),
    "not-worse": (
        {"kind": "not-worse"} | PAIR,
        {"supported": (99.3, 99.3), "contradicted": (99.0, 99.3)},
    ),
    "costs": (
        {"kind": "costs", "variants": ["A", "B"], "range": [1.0, 2.0]},
        {"supported": (97.8, 99.3), "contradicted": (99.2, 99.3)},
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_accuracy_kind_gives_its_words(kind):
    fields, cases = KINDS[kind]
    for word, (a, b) in cases.items():
        found = judge(v2(**fields), accs("A", spread(a, 0.02)) + accs("B", spread(b, 0.02)))
        expected = "contradicted: equivalent within ±0.1 point" if word == "equivalent" else word
        assert found.word == expected, (word, found.detail)


def test_undecided_says_the_n_that_would_decide_it_at_the_spread_seen():
    noisy = accs("A", spread(99.35, 0.3)) + accs("B", spread(99.3, 0.3))
    found = judge(v2(kind="higher", **PAIR), noisy)
    n = int(found.word.removeprefix("not decided (needs n = ").split()[0])
    assert found.word.endswith(" per variant)") and n > 4  # more than the 4 it has


def test_reaches_is_one_sample_against_the_level():
    test = v2(kind="reaches", variants=["A"], level=99.5)
    assert judge(test, accs("A", spread(99.6, 0.02))).word == "supported"
    assert judge(test, accs("A", spread(99.3, 0.02))).word == "contradicted"


# --- each defect v2 fixes, by a case v1 got wrong ----------------------------------------------


def test_narrower_gap_compares_the_size_of_the_gap_not_its_sign():
    """Gaps are negative (train measured with dropout on): A's −0.6 is wider than B's −0.1.
    v1's signed comparison calls A narrower; v2 compares |gap| and says it is wider."""
    runs = make("A", spread(-0.6), lambda g: {"gap": g}) + make(
        "B", spread(-0.1), lambda g: {"gap": g}
    )
    assert cl.judge(make_claim(kind="narrower-gap", variants=["A", "B"]), runs).word == "supported"
    assert judge(v2(kind="narrower-gap-abs", **PAIR), runs).word == "contradicted"


def falling(slope: float, zigzag: float, epochs: int = 8) -> list[dict]:
    """A history whose test loss falls by `slope` an epoch with a ± `zigzag` alternation."""
    rows = history(epochs, 99.3)
    for row in rows:
        sign = 1 if row["epoch"] % 2 else -1
        row["test/loss"] = 1.0 - slope * row["epoch"] + sign * zigzag
    return rows


def test_a_steadily_falling_curve_has_no_wobble():
    run = make("A", [0.0], lambda _: {"hist": falling(0.05, 0.0), "epochs": 8})[0]
    assert measures.wobble(run, "test/loss", (1, 8)) == pytest.approx(0.0, abs=1e-12)
    assert cl.spread(run, "test/loss", 8) == pytest.approx(0.05)  # v1 counted the trend


def test_steadier_reads_the_zigzag_not_the_trend():
    """A falls steeply with a small zigzag, B is flat with a 4× larger one: A is steadier.
    v1's mean |change| sees A's trend and calls B steadier."""

    def build(slope: float):
        return lambda z: {"hist": falling(slope, z), "epochs": 8}

    runs = make("A", spread(0.001, 5e-5), build(0.05)) + make("B", spread(0.004, 2e-4), build(0.0))
    v1 = cl.judge(
        make_claim(kind="steadier", series="test/loss", last=8, variants=["A", "B"]), runs
    )
    assert v1.word == "contradicted"
    test = v2(
        kind="steadier", variants=["A", "B"], series="test/loss", window=[2, 7], margin_ratio=2
    )
    found = judge(test, runs)
    assert found.word == "supported" and "(×0.25)" in found.detail


def test_tend_to_is_one_pooled_effect_over_the_pairs():
    """Three pairs each 0.06 apart, none significant alone (v1: every pair); pooled, it is."""
    pairs = [["A", "B"], ["C", "D"], ["E", "F"]]
    runs = [r for a, b in pairs for r in accs(a, spread(99.36)) + accs(b, spread(99.30))]
    v1 = cl.judge(make_claim(kind="higher", metric="final", pairs=pairs), runs)
    assert v1.word.startswith("not detectable")
    found = judge(v2(kind="higher-pooled", pairs=pairs, margin=0.1), runs)
    assert found.word == "supported" and "n = 4 per arm" in found.detail


def test_needs_no_penalty_is_non_inferiority_not_a_level():
    """Plain and penalised runs alike at 99.2 %: v1's level (99.3) calls it contradicted; the
    claim (the penalty is not needed) holds: the plain run is no worse."""
    runs = accs("A", spread(99.21, 0.01)) + accs("B", spread(99.21, 0.01))
    assert (
        cl.judge(make_claim(kind="reaches", metric="final", level=99.3, variants=["A"]), runs).word
        == "contradicted"
    )
    assert judge(v2(kind="not-worse", **PAIR), runs).word == "supported"


def climbing(curve: list[float]):
    def build(noise: float) -> dict:
        rows = history(len(curve), curve[-1] + noise)
        for row, acc in zip(rows, curve, strict=True):
            row["test/acc"] = acc + noise
        return {"hist": rows, "epochs": len(curve), "acc": curve[-1] + noise}

    return build


def test_consistently_through_training_is_every_epoch_not_the_last():
    """A ends above B but starts below it: v1 (final epoch) supports A > B; v2 does not."""
    noise = spread(0.0, 0.3)
    runs = make("A", noise, climbing([70, 75, 80, 82, 84, 86])) + make(
        "B", noise, climbing([78, 79, 80, 81, 82, 83])
    )
    v1 = cl.judge(make_claim(kind="higher", metric="final", variants=["A", "B"]), runs)
    assert v1.word == "supported"
    test = v2(kind="higher-throughout", variants=["A", "B"], window=[1, 6], margin=0.5)
    found = judge(test, runs)
    assert found.word == "contradicted" and "at epoch 1 (the weakest of 1–6)" in found.detail
    above = make("C", noise, climbing([80, 81, 82, 83, 84, 86]))
    throughout = v2(kind="higher-throughout", variants=["C", "B"], window=[1, 6], margin=0.5)
    assert judge(throughout, above + runs).word == "supported"


def test_enrichment_is_against_chance_not_a_share_of_half():
    """30 % of errors between cat and dog: under v1's 50 %, far over chance (about 2 %)."""
    shares = [0.30, 0.31, 0.29, 0.305]
    runs = make(
        "A",
        shares,
        lambda s: {"acc": 80.0, "conf": confusion(80.0, share=s)},
        dataset="cifar10-proxy",
    )
    v1 = make_claim(kind="confusions", variants=["A"], classes=[["cat", "dog"]], share=0.5)
    assert cl.judge(v1, runs).word == "contradicted"
    test = v2(kind="enriched", variants=["A"], classes=[["cat", "dog"]], margin_ratio=1.5)
    assert judge(test, runs).word == "supported"


def test_chance_spreads_each_actual_class_errors_evenly_over_the_others():
    counts = np.zeros((10, 10), dtype=int)
    counts[3, [j for j in range(10) if j != 3]] = 7  # cat's 63 errors, evenly: ratio 1
    counts[0, 1] = 50  # airplane's errors all go to automobile: no cat–dog share
    np.fill_diagonal(counts, 900)
    run = make("A", [0], lambda _: {"acc": 80.0, "conf": counts.tolist()}, dataset="cifar10-proxy")[
        0
    ]
    test = v2(kind="enriched", variants=["A"], classes=[["cat", "dog"]], margin_ratio=1.5)
    observed, chance = measures.enrichment(run, measures.linked(test, run.classes))
    assert observed == pytest.approx(7 / 113) and chance == pytest.approx(63 / 9 / 113)
    groups = [
        ["airplane", "automobile", "ship", "truck"],
        ["bird", "cat", "deer", "dog", "frog", "horse"],
    ]
    superclass = v2(kind="enriched", variants=["A"], superclasses=groups, margin_ratio=1.5)
    observed, chance = measures.enrichment(run, measures.linked(superclass, run.classes))
    assert observed == pytest.approx((50 + 5 * 7) / 113)
    assert chance == pytest.approx((50 * 3 / 9 + 63 * 5 / 9) / 113)


# --- seeds --------------------------------------------------------------------------------------


def test_only_the_registered_seeds_are_judged_and_the_rest_waits():
    """Seeds 0–2 (the pilot) say the opposite; the test reads 3–6 only; a missing one waits."""
    pilot = accs("A", [99.0, 99.0, 99.1]) + accs("B", [99.6, 99.7, 99.6])
    fresh = accs("A", spread(99.6, 0.02), first_seed=3) + accs(
        "B", spread(99.3, 0.02), first_seed=3
    )
    test = v2(kind="higher", seeds=[3, 4, 5, 6], **PAIR)
    found = judge(test, pilot + fresh)
    assert found.word == "supported" and found.seeds == (3, 4, 5, 6)
    later = accs("A", [90.0], first_seed=7) + accs("B", [99.9], first_seed=7)
    assert judge(test, pilot + fresh + later).detail == found.detail  # seed 7 is ignored
    assert judge(test, pilot + fresh[1:]).word == "waiting for runs (7 of 8 records)"


def test_a_test_registered_not_to_run_says_why_and_its_n():
    test = v2(kind="higher", seeds=[], n=32, run=False, why_not_run="over budget", **PAIR)
    found = judge(test, accs("A", spread(99.6)) + accs("B", spread(99.3)))
    assert found.word == "not run"
    assert found.detail == "not decided: needs n = 32 per variant; not run: over budget"


def test_v1_is_judged_on_seeds_0_to_2_whatever_lands_later():
    claim = make_claim(kind="higher", metric="final", variants=["A", "B"])
    pilot = accs("A", [99.5, 99.55, 99.6]) + accs("B", [99.0, 99.05, 99.1])
    before = writeups.judge_all(Inputs((), ((claim, view(pilot)),)))[0]
    seed3 = accs("A", [90.0], first_seed=3) + accs("B", [99.9], first_seed=3)
    after = writeups.judge_all(Inputs((), ((claim, view(pilot + seed3)),)))[0]
    assert (
        (after.word, after.detail) == (before.word, before.detail) == ("supported", before.detail)
    )
    assert pinned.restrict(view(pilot + seed3)).runs == view(pilot).runs


# --- the registration file -----------------------------------------------------------------------

GOOD = {"kind": "higher", "variants": ["bn", "gn"], "margin": 0.1, "seeds": [3, 4, 5], "n": 3}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"marign": 1}, "claims[0] (id x1).marign: unknown key (a typo?)"),
        ({"kind": None}, "claims[0] (id x1): missing key 'kind' (allowed: higher, higher-pooled,"),
        ({"n": "3"}, "claims[0] (id x1).n: Input should be a valid integer"),
        ({"n": 4}, "claims[0] (id x1): 3 seeds for n = 4 (allowed: n seeds)"),
        ({"run": False}, "claims[0] (id x1): run: false needs why_not_run"),
        ({"seeds": [3, 3, 5]}, "claims[0] (id x1): seeds: seed 3 is given twice"),
        ({"file": "mine"}, "claims[0] (id x1).file: Input should be 'default' or 'seeds'"),
        ({"variants": ["bn", "bn"]}, "claims[0] (id x1): 'bn' is compared with itself"),
        (
            {"kind": "steadier", "series": "test/loss", "window": [9, 3], "margin_ratio": 2},
            "claims[0] (id x1): window must be [first, last] epoch with first ≤ last",
        ),
        (
            {"kind": "enriched", "variants": ["bn"], "classes": [["cat", "dog"]]},
            "claims[0] (id x1).margin_ratio: Field required",
        ),
    ],
)
def test_a_bad_registration_is_one_line_naming_file_and_key(tmp_path, change, expected):
    fields = {k: v for k, v in (GOOD | change).items() if v is not None}
    if fields.get("kind", "higher") != "higher":
        fields.pop("margin")
    path = tmp_path / "claims-v2.yaml"
    raw = {"version": 2, "pilot_seeds": [0, 1, 2], "alpha": 0.05, "power": 0.8}
    path.write_text(yaml.safe_dump(raw | {"claims": [BASE | fields]}))
    with pytest.raises(NormlabError) as err:
        rg.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}") and "\n" not in message, message


STUDY = Study(
    epochs=12,
    seeds=[0, 1, 2],
    set={"dataset": "cifar10-proxy"},
    variants={"bn": {"norm": "bn"}, "gn": {"norm": "gn"}},
    variant_seeds={"bn": [0, 1, 2, 3, 4, 5], "gn": [0, 1, 2, 3, 4, 5]},
)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"study": "s9"}, ".study: 's9' is not a study of studies/seeds.yaml (studies: fake)"),
        ({"variants": ["bn", "ln"]}, ".variants: 'ln' is not a variant of study fake"),
        ({"seeds": [3, 4, 6]}, ".seeds: seed 6 of bn is not planned in study fake"),
        (
            {"kind": "higher-throughout", "window": [3, 13]},
            ".window: epoch 13, but study fake runs 12 (allowed: 1 to 12)",
        ),
        (
            {
                "kind": "enriched",
                "variants": ["bn"],
                "classes": [["cat", "wolf"]],
                "margin_ratio": 1.5,
            },
            ".classes: 'wolf' is not a class of cifar10-proxy",
        ),
    ],
)
def test_a_test_its_study_cannot_run_is_one_line(tmp_path, change, expected):
    fields = GOOD | change
    if fields["kind"] == "enriched":
        fields.pop("margin")
    registration = rg.Registration.model_validate(
        {
            "version": 2,
            "pilot_seeds": [0, 1, 2],
            "alpha": 0.05,
            "power": 0.8,
            "claims": [BASE | fields],
        }
    )
    with pytest.raises(NormlabError) as err:
        rg.check_studies(registration, {"seeds": {"fake": STUDY}}, tmp_path / "c.yaml")
    assert str(err.value).startswith(f"{tmp_path / 'c.yaml'}: claims[0] (id x1){expected}")


def test_the_registration_reads_and_fits_its_studies():
    registration = rg.load()
    files = {k: plan_mod.load_file(p).studies for k, p in rg.STUDY_FILES.items()}
    rg.check_studies(registration, files)
    assert set(rg.kinds()) >= {t.kind for t in registration.claims}
    assert all(
        not set(t.seeds) & {0, 1, 2} for t in registration.claims if t.study != "s002-cohort"
    )
    assert measures.log_margin(registration.claims[3]) == pytest.approx(math.log(2))
