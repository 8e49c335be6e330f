"""claims: every kind comes out supported, contradicted and not detectable on fake runs made for
it; missing runs cannot be tested yet; a bad claims file is one line naming file and key."""

import re

import pytest
import yaml

from helpers import confusion, fake_record, history
from normlab.analysis.claims import judge as cl
from normlab.analysis.claims import schema as cf
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.study.plan import Study
from normlab.errors import NormlabError


def make_claim(**fields) -> object:
    base = {"id": "x1", "source": "999 (a)", "text": "a claim", "study": "fake"}
    return cf.ClaimsFile.model_validate({"claims": [base | fields]}).claims[0]


def runs(variant: str, values: list[float], make=None, **kw) -> list[vd.Outcome]:
    """One run per value; `make(value)` → fake_record keywords (default: the final accuracy)."""
    made = []
    for seed, value in enumerate(values):
        extra = make(value) if make else {}
        acc = extra.pop("acc", value if not make else 99.3)
        made.append(vd.run_of(fake_record("fake", variant, seed, acc, **kw, **extra)))
    return made


CLEAR_HI = [99.50, 99.55, 99.60, 99.52]
CLEAR_LO = [99.00, 99.05, 99.10, 99.02]
NOISY_A = [99.3, 99.5, 99.1, 99.4]
NOISY_B = [99.35, 99.2, 99.45, 99.3]


def accs(a: list[float], b: list[float]) -> list[vd.Outcome]:
    return runs("A", a) + runs("B", b)


def wobbles(a: list[float], b: list[float]) -> list[vd.Outcome]:
    def make(w):
        return {"hist": history(6, 99.3, wobble=w), "epochs": 6}

    return runs("A", a, make) + runs("B", b, make)


def reaching(a: list[int], b: list[int]) -> list[vd.Outcome]:
    def make(epoch):
        return {"hist": history(8, 99.3, reach=epoch), "epochs": 8}

    return runs("A", a, make) + runs("B", b, make)


def gaps(a: list[float], b: list[float]) -> list[vd.Outcome]:
    def make(gap):
        return {"gap": gap}

    return runs("A", a, make) + runs("B", b, make)


def shares(a: list[float]) -> list[vd.Outcome]:
    def make(share):
        return {"acc": 80.0, "conf": confusion(80.0, pair=(3, 5), share=share)}

    return runs("A", a, make, dataset="cifar10-proxy")


PAIR = {"variants": ["A", "B"]}
KINDS = {
    "higher": (
        {"kind": "higher", "metric": "final"} | PAIR,
        accs,
        (CLEAR_HI, CLEAR_LO),
        (CLEAR_LO, CLEAR_HI),
        (NOISY_A, NOISY_B),
    ),
    "similar": (
        {"kind": "similar", "metric": "final", "margin": 0.2} | PAIR,
        accs,
        ([99.30, 99.32, 99.31, 99.33], [99.31, 99.29, 99.30, 99.32]),
        ([v + 1 for v in CLEAR_LO], CLEAR_LO),
        ([99.0, 99.6, 99.2, 99.5], [99.3, 99.1, 99.6, 99.2]),
    ),
    "costs": (
        {"kind": "costs", "metric": "final", "range": [1.0, 2.0]} | PAIR,
        accs,
        ([97.80, 97.83, 97.81, 97.82], [99.30, 99.32, 99.31, 99.33]),
        ([99.20, 99.22, 99.21, 99.23], [99.30, 99.32, 99.31, 99.33]),
        ([96.5, 98.8, 97.0, 98.5], [99.30, 99.32, 99.31, 99.33]),
    ),
    "reaches": (
        {"kind": "reaches", "metric": "final", "level": 99.3, "variants": ["A"]},
        lambda a: runs("A", a),
        ([99.5, 99.52, 99.48, 99.51],),
        ([98.5, 98.52, 98.48, 98.51],),
        ([99.1, 99.5, 99.2, 99.45],),
    ),
    "steadier": (
        {"kind": "steadier", "series": "test/loss", "last": 4} | PAIR,
        wobbles,
        ([0.001, 0.0012, 0.0011, 0.0013], [0.05, 0.052, 0.051, 0.049]),
        ([0.05, 0.052, 0.051, 0.049], [0.001, 0.0012, 0.0011, 0.0013]),
        ([0.01, 0.03, 0.02, 0.04], [0.03, 0.01, 0.04, 0.02]),
    ),
    "faster": (
        {"kind": "faster", "level": 99.0} | PAIR,
        reaching,
        ([2, 2, 3, 2], [6, 7, 6, 7]),
        ([6, 7, 6, 7], [2, 2, 3, 2]),
        ([2, 5, 3, 6], [4, 3, 6, 2]),
    ),
    "narrower-gap": (
        {"kind": "narrower-gap"} | PAIR,
        gaps,
        ([-0.1, -0.12, -0.11, -0.13], [0.5, 0.52, 0.51, 0.49]),
        ([0.5, 0.52, 0.51, 0.49], [-0.1, -0.12, -0.11, -0.13]),
        ([-0.1, 0.4, 0.1, 0.3], [0.2, -0.1, 0.35, 0.1]),
    ),
    "confusions": (
        {"kind": "confusions", "variants": ["A"], "classes": [["cat", "dog"]], "share": 0.5},
        shares,
        ([0.8, 0.78, 0.82, 0.79],),
        ([0.1, 0.12, 0.11, 0.09],),
        ([0.3, 0.7, 0.55, 0.45],),
    ),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "case, word", [(2, "supported"), (3, "contradicted"), (4, "not detectable with n = ")]
)
def test_each_kind_supported_contradicted_not_detectable(kind, case, word):
    fields, build, *cases = KINDS[kind]
    verdict = cl.judge(make_claim(**fields), build(*cases[case - 2]))
    assert verdict.word.startswith(word), verdict.detail
    assert "95 % CI" in verdict.detail and "Holm p" in verdict.detail


def test_a_loss_difference_is_written_in_thousandths_not_as_zero():
    fields, build, *cases = KINDS["steadier"]
    verdict = cl.judge(make_claim(**fields), build(*cases[0]))
    assert re.search(r"= -0\.\d{4} loss/epoch \(95 % CI -0\.\d{4} to -0\.\d{4};", verdict.detail)


def test_not_detectable_states_n_and_the_smallest_detectable_difference():
    verdict = cl.judge(make_claim(kind="higher", metric="final", **PAIR), accs(NOISY_A, NOISY_B))
    assert verdict.word == "not detectable with n = 4 vs 4"
    assert "smallest difference this n could detect" in verdict.detail


def test_a_family_is_supported_only_when_every_pair_is():
    both = runs("A", CLEAR_HI) + runs("B", CLEAR_LO) + runs("C", CLEAR_HI) + runs("D", CLEAR_LO)
    one = runs("A", CLEAR_HI) + runs("B", CLEAR_LO) + runs("C", NOISY_A) + runs("D", NOISY_B)
    claim = make_claim(kind="higher", metric="final", pairs=[["A", "B"], ["C", "D"]])
    assert cl.judge(claim, both).word == "supported"
    verdict = cl.judge(claim, one)
    assert verdict.word.startswith("not detectable")
    assert "one family, Holm over its 2 tests" in verdict.detail


def test_runs_that_did_not_learn_are_left_out_and_named():
    claim = make_claim(kind="higher", metric="final", **PAIR)
    verdict = cl.judge(claim, accs([*CLEAR_HI, 11.35], CLEAR_LO))
    assert verdict.word == "supported"
    assert "1 of 5 seeds stayed at chance, 11.35 % (seed 4)" in verdict.detail


def test_missing_runs_cannot_be_tested_yet():
    claim = make_claim(kind="higher", metric="final", **PAIR)
    verdict = cl.judge(claim, accs(CLEAR_HI[:3], CLEAR_LO), missing=[("A", 3)])
    assert verdict.word == "cannot be tested yet" and "A (1 of 4 planned)" in verdict.detail
    assert cl.judge(claim, runs("A", CLEAR_HI)).word == "cannot be tested yet"
    waiting = cl.judge(claim, [], missing=[("A", 0)], not_run="left for a GPU")
    assert waiting.detail.startswith("fake is not run (left for a GPU); runs missing in fake: A")
    undefined = cl.judge(claim, [], defined=False)
    assert undefined.word == "cannot be tested yet" and "not defined" in undefined.detail


def test_a_class_the_dataset_lacks_is_one_line():
    claim = make_claim(kind="confusions", variants=["A"], classes=[["cat", "wolf"]], share=0.5)
    with pytest.raises(NormlabError, match="class 'wolf' is not a class of cifar10-proxy"):
        cl.judge(claim, shares([0.5, 0.6]))


@pytest.mark.parametrize(
    "claim, expected",
    [
        (
            {"kind": "similar", "metric": "final", "variants": ["a", "b"]},
            "claims[0] (id x1).margin: Field required",
        ),
        ({"kind": "bigger", "variants": ["a", "b"]}, "claims[0] (id x1): Input tag 'bigger'"),
        (
            {"variants": ["a", "b"]},
            "claims[0] (id x1): missing key 'kind' (allowed: higher, similar, costs, reaches, "
            "steadier, faster, narrower-gap, confusions)",
        ),
        (
            {"kind": "higher", "metric": "final", "variants": ["a", "b"], "marign": 1},
            "claims[0] (id x1).marign: unknown key (a typo?)",
        ),
        ({"kind": "higher", "metric": "last", "variants": ["a", "b"]}, "claims[0] (id x1).metric:"),
        (
            {"kind": "higher", "metric": "final", "variants": ["a"]},
            "claims[0] (id x1): 'variants' must be [A, B]",
        ),
        (
            {"kind": "higher", "metric": "final", "variants": ["a", "b"], "pairs": [["a", "b"]]},
            "claims[0] (id x1): give either 'variants' or 'pairs'",
        ),
        (
            {"kind": "costs", "metric": "final", "variants": ["a", "b"], "range": [2, 1]},
            "claims[0] (id x1): range must be [low, high]",
        ),
        (
            {"kind": "similar", "metric": "final", "margin": 0.2, "variants": ["a", "a"]},
            "claims[0] (id x1): 'variants' compares 'a' with itself (allowed: two different",
        ),
        (
            {"kind": "narrower-gap", "pairs": [["a", "b"], ["c", "c"]]},
            "claims[0] (id x1): 'pairs' compares 'c' with itself",
        ),
    ],
)
def test_a_bad_claims_file_is_one_line_naming_file_and_key(tmp_path, claim, expected):
    path = tmp_path / "claims.yaml"
    base = {"id": "x1", "source": "s", "text": "t", "study": "s"}
    path.write_text(yaml.safe_dump({"claims": [base | claim]}))
    with pytest.raises(NormlabError) as err:
        cf.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}") and "\n" not in message, message


STUDY = Study(epochs=12, seeds=[0], variants={"bn": {"norm": "bn"}, "gn": {"norm": "gn"}})


@pytest.mark.parametrize(
    "claim, reported, expected",
    [
        (
            {"kind": "higher", "metric": "final", "variants": ["gn", "nb"]},
            {},
            "claims[0] (id x1).variants: 'nb' is not a variant of study s (variants: bn, gn)",
        ),
        (
            {"kind": "narrower-gap", "pairs": [["gn", "bn"], ["ln", "bn"]]},
            {},
            "claims[0] (id x1).pairs: 'ln' is not a variant of study s (variants: bn, gn)",
        ),
        (
            {"kind": "steadier", "series": "test/loss", "last": 13, "variants": ["gn", "bn"]},
            {},
            "claims[0] (id x1).last: 13 epochs, but study s runs 12 (allowed: 2 to 12)",
        ),
        (
            {"kind": "higher", "metric": "final", "variants": ["gn", "bn"]},
            {"variant": "in"},
            "reported[0].variant: 'in' is not a variant of study s (variants: bn, gn)",
        ),
    ],
)
def test_a_claim_on_variants_or_epochs_its_study_lacks_is_one_line(
    tmp_path, claim, reported, expected
):
    """It would wait as 'cannot be tested yet' forever: say so at once, naming the allowed."""
    path = tmp_path / "claims.yaml"
    base = {"id": "x1", "source": "s", "text": "t", "study": "s"}
    number = {"source": "s", "study": "s", "variant": "bn", "metric": "final", "acc": 99.0}
    path.write_text(yaml.safe_dump({"claims": [base | claim], "reported": [number | reported]}))
    with pytest.raises(NormlabError) as err:
        cf.check_studies(cf.load(path), {"s": STUDY}, path)
    assert str(err.value) == f"{path}: {expected}"


def test_a_claim_on_a_study_no_file_defines_yet_waits_for_it(tmp_path):
    claimed = cf.ClaimsFile.model_validate(
        {
            "claims": [
                {"id": "x1", "source": "s", "text": "t", "study": "later"}
                | {"kind": "steadier", "series": "test/loss", "last": 99, "variants": ["a", "b"]}
            ],
            "reported": [
                {"source": "s", "study": "later", "variant": "c", "metric": "best", "acc": 99.0}
            ],
        }
    )
    cf.check_studies(claimed, {"s": STUDY})  # no error: its verdict says it cannot be tested yet


def test_unreadable_and_duplicate_claims_files(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims: [\n")
    with pytest.raises(NormlabError, match="not valid YAML"):
        cf.load(path)
    for text, empty in (("", " (the file is empty)"), ("- id: x1\n", "")):
        path.write_text(text)
        with pytest.raises(NormlabError) as err:
            cf.load(path)
        top = f"{path}: expected a mapping with key 'claims' at the top level"
        assert str(err.value) == top + empty
    one = {
        "id": "x1",
        "source": "s",
        "text": "t",
        "study": "s",
        "kind": "narrower-gap",
        "variants": ["a", "b"],
    }
    path.write_text(yaml.safe_dump({"claims": [one, one]}))
    with pytest.raises(NormlabError, match="claim id 'x1' is used twice"):
        cf.load(path)


def test_the_seeded_claims_cover_every_write_up_claim_and_wait_for_their_runs():
    claims_file = cf.load()
    sources = {c.source for c in claims_file.claims}
    expected = {
        f"{w} ({c})"
        for w, letters in (
            ("000", "abc"),
            ("001", "abcd"),
            ("002", "abc"),
            ("003", "ab"),
            ("004", "ab"),
        )
        for c in letters
    }
    assert sources == expected
    studies = {"s000", "s001", "s001-batch", "s002", "s003", "s004"}
    assert {c.study for c in claims_file.claims} <= studies
    assert {r.study for r in claims_file.reported} <= studies
    for claim in claims_file.claims:
        assert cl.judge(claim, []).word == "cannot be tested yet"
