"""studies/claims-v2.yaml and studies/claims-v3.yaml: versions 2 and 3 of the claims, each
registered before the runs it is judged on (v3: issue 30's small-batch tests, its own kinds).

Each file's header defines its kinds; this module only reads it, strictly (no "3" for 3, no unknown
key), so that a registration cannot be bent by a lenient reader after the fact. Every problem is
one line naming the file and the key, as for version 1 (normlab.analysis.claims.schema). What
the runs say of each test: normlab.analysis.claims.retest; how its n was sized: .sizing; the
model of each kind: .kinds.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from normlab import yamlfile
from normlab.analysis.claims.kinds import LINE_KINDS, Enriched, Seed, Test, TestV3
from normlab.analysis.claims.schema import invalid
from normlab.analysis.study.plan import Study
from normlab.data import specs
from normlab.errors import NormlabError

FILE = Path("studies/claims-v2.yaml")
FILE_V3 = Path("studies/claims-v3.yaml")  # version 3: issue 30's small-batch tests
FILES = (FILE, FILE_V3)  # every registration, in the order the report shows them
# `file:` names the study file a test's study is in (the report finds a study by its name).
STUDY_FILES = {
    "default": Path("studies/default.yaml"),
    "seeds": Path("studies/seeds.yaml"),
    "small-batch": Path("studies/small-batch.yaml"),
}


def kinds(version: int = 2) -> list[str]:
    """Every kind a test of this version may have, in the order of its union."""
    union = TestV3 if version == 3 else Test
    models = get_args(get_args(union)[0])
    return [get_args(model.model_fields["kind"].annotation)[0] for model in models]


def _check_unique(tests: Sequence[Any]) -> None:
    seen: set[str] = set()
    for test in tests:
        if test.id in seen:
            raise ValueError(f"claim id {test.id!r} is used twice")
        seen.add(test.id)


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[2]
    pilot_seeds: list[Seed] = Field(min_length=2)
    alpha: float = Field(gt=0, lt=0.5)
    power: float = Field(gt=0.5, lt=1)
    claims: list[Test] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "Registration":
        _check_unique(self.claims)
        return self


class RegistrationV3(BaseModel):
    """studies/claims-v3.yaml: v2's rules with v3's kinds, and no pilot: its study had no run
    before the registration, so its n (3) is the budget's and every seed is a fresh one."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[3]
    alpha: float = Field(gt=0, lt=0.5)
    power: float = Field(gt=0.5, lt=1)
    claims: list[TestV3] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "RegistrationV3":
        _check_unique(self.claims)
        return self

    @property
    def pilot_seeds(self) -> list[int]:
        """None: the report shows no pilot verdict beside a v3 test."""
        return []


AnyRegistration = Registration | RegistrationV3
MODELS: dict[int, type[AnyRegistration]] = {2: Registration, 3: RegistrationV3}


def load(path: Path = FILE) -> AnyRegistration:
    """Read and validate a registration, version 2 or 3 as its `version` says; any problem is
    one line naming the file and key."""
    raw = yamlfile.read(path, "claims file", "key 'claims'")
    version = _version(path, raw)
    try:
        return MODELS[version].model_validate(raw)
    except ValidationError as exc:
        raise invalid(path, raw, exc, kinds(version)) from None


def _version(path: Path, raw: Any) -> int:
    """3 for a file that says so; 2 otherwise, so that a file with no version (or not a
    mapping) gets v2's one-line error, as before v3. A version that is neither is one line."""
    version = raw.get("version") if isinstance(raw, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version not in MODELS:
        allowed = ", ".join(map(str, MODELS))
        raise NormlabError(f"{path}: version: {version} (allowed: {allowed})")
    return 3 if version == 3 else 2


def check_studies(
    registered: AnyRegistration, files: Mapping[str, Mapping[str, Study]], path: Path = FILE
) -> None:
    """What the file alone cannot tell, against the study files (`file` name → its studies):
    the study is in the file named, it has every variant, it plans every seed a test that runs
    is judged on (else the test would wait forever), the windows fit in its epochs, the classes
    are its dataset's, a line's variants each train at a batch size of their own."""
    for i, test in enumerate(registered.claims):
        where = f"{path}: claims[{i}] (id {test.id})"
        studies = files.get(test.file, {})
        study = studies.get(test.study)
        if study is None:
            raise NormlabError(
                f"{where}.study: {test.study!r} is not a study of {STUDY_FILES[test.file]} "
                f"(studies: {', '.join(studies) or 'none'})"
            )
        key = "pairs" if test.pairs is not None else "variants"
        unknown = [v for v in test.names if v not in study.variants]
        if unknown:
            raise NormlabError(
                f"{where}.{key}: {unknown[0]!r} is not a variant of study {test.study} "
                f"(variants: {', '.join(study.variants)})"
            )
        if test.run:
            _planned(where, test, study)
        _fits(where, test, study)
        if test.kind in LINE_KINDS:
            _one_per_batch(where, test, study)


def _planned(where: str, test: Any, study: Study) -> None:
    for variant in test.names:
        lacking = sorted(set(test.seeds) - set(study.seeds_of(variant)))
        if lacking:
            raise NormlabError(
                f"{where}.seeds: seed {lacking[0]} of {variant} is not planned in study "
                f"{test.study} (planned: {', '.join(map(str, study.seeds_of(variant)))})"
            )


def _fits(where: str, test: Any, study: Study) -> None:
    last = test.window[1] if hasattr(test, "window") else getattr(test, "k", 1)
    if last > study.epochs:
        key = "window" if hasattr(test, "window") else "k"
        raise NormlabError(
            f"{where}.{key}: epoch {last}, but study {test.study} runs {study.epochs} "
            f"(allowed: 1 to {study.epochs})"
        )
    dataset = study.set.get("dataset")
    if isinstance(test, Enriched) and dataset:
        classes = specs.spec(dataset).classes
        bad = [c for c in test.named if c not in classes]
        if bad:
            key = "classes" if test.classes is not None else "superclasses"
            raise NormlabError(
                f"{where}.{key}: {bad[0]!r} is not a class of {dataset} "
                f"(allowed: {', '.join(classes)})"
            )


def _one_per_batch(where: str, test: Any, study: Study) -> None:
    """slope, flat: the variants are the line's points, one per batch size; two at one size
    would make a line of fewer points than the test names (the size as the study sets it;
    unset: params.yaml's)."""
    seen: dict[Any, str] = {}
    for variant in test.names:
        size = {**study.set, **study.variants[variant]}.get("train.batch_size")
        if size in seen:
            shown = size if size is not None else "params.yaml's"
            raise NormlabError(
                f"{where}.variants: {seen[size]!r} and {variant!r} both train at batch size "
                f"{shown} (allowed: one variant per batch size)"
            )
        seen[size] = variant
