"""studies/claims-v2.yaml: version 2 of the claims, registered before the runs it is judged on.

Its header defines every kind; this module only reads it, strictly (no "3" for 3, no unknown
key), so that a registration cannot be bent by a lenient reader after the fact. Every problem is
one line naming the file and the key, as for version 1 (normlab.analysis.claims.schema). What
the runs say of each test: normlab.analysis.claims.retest; how its n was sized: .sizing.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from normlab import yamlfile
from normlab.analysis.claims.schema import invalid
from normlab.analysis.study.plan import Study
from normlab.data import specs
from normlab.errors import NormlabError

FILE = Path("studies/claims-v2.yaml")
FILE_V3 = Path("studies/claims-v3.yaml")  # version 3: issue 30's small-batch tests
# `file:` names the study file a test's study is in (the report finds a study by its name).
STUDY_FILES = {"default": Path("studies/default.yaml"), "seeds": Path("studies/seeds.yaml")}
SINGLE_KINDS = ("reaches", "enriched")  # the rest compare two variants

Seed = Annotated[StrictInt, Field(ge=0)]
Pair = Annotated[list[str], Field(min_length=2, max_length=2)]
Window = Annotated[list[Annotated[StrictInt, Field(ge=1)]], Field(min_length=2, max_length=2)]


class _Test(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: str  # narrowed to one Literal by each kind's model below
    id: str = Field(pattern=r"^[0-9a-z][0-9a-z-]*$")
    source: str = Field(min_length=1)  # "001 (c)": the write-up's claim, as in version 1
    text: str = Field(min_length=1)
    file: Literal["default", "seeds"]
    study: str = Field(min_length=1)
    variants: list[str] | None = Field(default=None, min_length=1)
    pairs: list[Pair] | None = Field(default=None, min_length=1)
    seeds: list[Seed]  # the fresh seeds it is judged on, and only those
    n: StrictInt = Field(ge=3)  # seeds per variant, registered (80 % power from the pilot)
    run: bool = True
    why_not_run: str = ""
    note: str = ""

    @model_validator(mode="after")
    def _variants_or_pairs(self) -> "_Test":
        if (self.variants is None) == (self.pairs is None):
            raise ValueError("give either 'variants' or 'pairs' (a family), not both or neither")
        single = self.kind in SINGLE_KINDS
        if single and self.pairs is not None:
            raise ValueError(f"kind {self.kind!r} reads single variants: use 'variants'")
        if not single and self.variants is not None and len(self.variants) != 2:
            raise ValueError("'variants' must be [A, B] for this kind (or use 'pairs')")
        for unit in self.units:
            if len(unit) == 2 and unit[0] == unit[1]:
                raise ValueError(f"{unit[0]!r} is compared with itself (allowed: two variants)")
        return self

    @model_validator(mode="after")
    def _run_or_why_not(self) -> "_Test":
        """A test runs on exactly its n seeds, or says why it does not run (never half)."""
        twice = [s for s in self.seeds if self.seeds.count(s) > 1]
        if twice:
            raise ValueError(f"seeds: seed {twice[0]} is given twice")
        if self.run and self.why_not_run:
            raise ValueError("why_not_run is given but run is true (allowed: run: false)")
        if not self.run and not self.why_not_run:
            raise ValueError("run: false needs why_not_run (the reason, said in its verdict)")
        if (self.run or self.seeds) and len(self.seeds) != self.n:
            raise ValueError(f"{len(self.seeds)} seeds for n = {self.n} (allowed: n seeds)")
        return self

    @property
    def units(self) -> list[tuple[str, ...]]:
        """What is tested: (A, B) pairs, or (A,) single variants."""
        if self.pairs is not None:
            return [tuple(p) for p in self.pairs]
        if self.kind in SINGLE_KINDS:
            return [(v,) for v in self.variants or ()]
        return [tuple(self.variants or ())]

    @property
    def names(self) -> list[str]:
        """Every variant the test reads, in first-mention order."""
        return list(dict.fromkeys(v for unit in self.units for v in unit))


Ratio = Annotated[float, Field(gt=1)]
Series = Literal["test/loss", "test/acc", "train/loss", "train/acc"]


class _Windowed(_Test):
    window: Window  # [first, last] epoch, 1-based, both included

    @model_validator(mode="after")
    def _ordered(self) -> "_Windowed":
        if self.window[0] > self.window[1]:
            raise ValueError("window must be [first, last] epoch with first ≤ last")
        return self


class _Margined(_Test):
    margin: Annotated[float, Field(gt=0)]  # in the test's units: points of accuracy or error


class Higher(_Margined):
    kind: Literal["higher"]


class HigherPooled(_Margined):
    kind: Literal["higher-pooled"]


class NotWorse(_Margined):
    kind: Literal["not-worse"]


class Similar(_Margined):
    kind: Literal["similar"]


class Costs(_Test):
    kind: Literal["costs"]
    range: Annotated[list[float], Field(min_length=2, max_length=2)]  # B − A, points

    @model_validator(mode="after")
    def _ordered(self) -> "Costs":
        if self.range[0] >= self.range[1]:
            raise ValueError("range must be [low, high] with low < high")
        return self


class Reaches(_Test):
    kind: Literal["reaches"]
    level: float = Field(gt=0, le=100)


class HigherThroughout(_Windowed):
    kind: Literal["higher-throughout"]
    margin: Annotated[float, Field(gt=0)]


class Steadier(_Windowed):
    kind: Literal["steadier"]
    series: Series
    margin_ratio: Ratio

    @model_validator(mode="after")
    def _room_for_second_differences(self) -> "Steadier":
        if self.window[1] - self.window[0] < 2:
            raise ValueError("window must span at least 3 epochs (second differences)")
        return self


class LearnsFaster(_Margined):
    kind: Literal["learns-faster"]
    k: StrictInt = Field(ge=1)


class NarrowerGapAbs(_Margined):
    kind: Literal["narrower-gap-abs"]


class Enriched(_Test):
    kind: Literal["enriched"]
    classes: list[Pair] | None = Field(default=None, min_length=1)
    superclasses: list[Annotated[list[str], Field(min_length=2)]] | None = Field(
        default=None, min_length=1
    )
    margin_ratio: Ratio

    @model_validator(mode="after")
    def _one_grouping(self) -> "Enriched":
        if (self.classes is None) == (self.superclasses is None):
            raise ValueError("give either 'classes' (pairs) or 'superclasses', not both")
        return self

    @property
    def named(self) -> list[str]:
        """Every class the test names."""
        return [c for group in (self.classes or self.superclasses or []) for c in group]


Test = Annotated[
    Higher
    | HigherPooled
    | NotWorse
    | Similar
    | Costs
    | Reaches
    | HigherThroughout
    | Steadier
    | LearnsFaster
    | NarrowerGapAbs
    | Enriched,
    Field(discriminator="kind"),
]


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
