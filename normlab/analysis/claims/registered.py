"""studies/claims-v2.yaml: version 2 of the claims, registered before the runs it is judged on.

Its header defines every kind; this module only reads it, strictly (no "3" for 3, no unknown
key), so that a registration cannot be bent by a lenient reader after the fact. Every problem is
one line naming the file and the key, as for version 1 (normlab.analysis.claims.schema). What
the runs say of each test: normlab.analysis.claims.retest; how its n was sized: .sizing; the
model of each kind: .kinds.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from normlab import yamlfile
from normlab.analysis.claims.kinds import Enriched, Seed, Test
from normlab.analysis.claims.schema import invalid
from normlab.analysis.study.plan import Study
from normlab.data import specs
from normlab.errors import NormlabError

FILE = Path("studies/claims-v2.yaml")
FILE_V3 = Path("studies/claims-v3.yaml")  # version 3: issue 30's small-batch tests
# `file:` names the study file a test's study is in (the report finds a study by its name).
STUDY_FILES = {"default": Path("studies/default.yaml"), "seeds": Path("studies/seeds.yaml")}


def kinds() -> list[str]:
    """Every kind a v2 test may have, in the order of `Test`."""
    models = get_args(get_args(Test)[0])
    return [get_args(model.model_fields["kind"].annotation)[0] for model in models]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[2]
    pilot_seeds: list[Seed] = Field(min_length=2)
    alpha: float = Field(gt=0, lt=0.5)
    power: float = Field(gt=0.5, lt=1)
    claims: list[Test] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> "Registration":
        seen: set[str] = set()
        for test in self.claims:
            if test.id in seen:
                raise ValueError(f"claim id {test.id!r} is used twice")
            seen.add(test.id)
        return self


def load(path: Path = FILE) -> Registration:
    """Read and validate the registration; any problem is one line naming the file and key."""
    raw = yamlfile.read(path, "claims file", "key 'claims'")
    try:
        return Registration.model_validate(raw)
    except ValidationError as exc:
        raise invalid(path, raw, exc, kinds()) from None


def check_studies(
    registered: Registration, files: Mapping[str, Mapping[str, Study]], path: Path = FILE
) -> None:
    """What the file alone cannot tell, against the study files (`file` name → its studies):
    the study is in the file named, it has every variant, it plans every seed a test that runs
    is judged on (else the test would wait forever), the windows fit in its epochs, the classes
    are its dataset's."""
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
