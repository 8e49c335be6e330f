"""claims v3 (studies/claims-v3.yaml): the file is read as strictly as v2's, with v3's kinds
only; a bad file or a test its study cannot run is one line naming file and key; the committed
registration reads and fits studies/small-batch.yaml."""

import pytest
import yaml

from helpers import BASE
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
