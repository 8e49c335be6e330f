"""The tests of a registration (studies/claims-v2.yaml, studies/claims-v3.yaml), a pydantic model
per kind: what each test names, strictly (no "3" for 3, no unknown key). The files that hold
them, and how they are read and checked against their studies: normlab.analysis.claims.registered.

Version 3 has kinds of its own (`TestV3`), not v2's: each version's header defines exactly the
kinds its file may use, so a v2 kind in v3's file (or the reverse) is an error, not a guess.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

SINGLE_KINDS = ("reaches", "enriched")  # the rest compare two variants, but:
LINE_KINDS = ("slope", "flat")  # v3: a line over one variant per batch size

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
        if self.kind in LINE_KINDS:
            return self._a_line()
        single = self.kind in SINGLE_KINDS
        if single and self.pairs is not None:
            raise ValueError(f"kind {self.kind!r} reads single variants: use 'variants'")
        if not single and self.variants is not None and len(self.variants) != 2:
            raise ValueError("'variants' must be [A, B] for this kind (or use 'pairs')")
        for unit in self.units:
            if len(unit) == 2 and unit[0] == unit[1]:
                raise ValueError(f"{unit[0]!r} is compared with itself (allowed: two variants)")
        return self

    def _a_line(self) -> "_Test":
        """slope, flat: the variants are the line's points along the batch axis, so at least
        two and none twice (which batch size each trains at: registered.check_studies)."""
        if self.pairs is not None:
            raise ValueError(f"kind {self.kind!r} reads one variant per batch size: use 'variants'")
        names = self.variants or []
        if len(names) < 2:
            raise ValueError("'variants' must name at least 2 variants (one per batch size)")
        twice = [v for v in names if names.count(v) > 1]
        if twice:
            raise ValueError(f"{twice[0]!r} is given twice (allowed: one variant per batch size)")
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


class _V3(_Test):
    """A v3 test (studies/claims-v3.yaml): its study may also be in studies/small-batch.yaml,
    and every v3 kind has a margin (in points; for a slope, points per doubling)."""

    file: Literal["default", "seeds", "small-batch"]
    margin: Annotated[float, Field(gt=0)]


class Slope(_V3):
    kind: Literal["slope"]
    direction: Literal["down"]  # the claim: slope < 0, error grows as the batch shrinks


class Flat(_V3):
    kind: Literal["flat"]


class HigherBy(_V3):
    kind: Literal["higher-by"]


TestV3 = Annotated[Slope | Flat | HigherBy, Field(discriminator="kind")]
