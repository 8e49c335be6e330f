"""studies/claims.yaml: the claims of the write-ups as data, validated before any is judged.

Every claim names its source, the study and variants it reads, the kind of test and every
margin, threshold and metric — written down before the runs it reads land, so a claim is never
tuned to its data. What each kind tests, and the verdicts: normlab.analysis.claims.judge.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from normlab import yamlfile
from normlab.analysis.study.plan import Study
from normlab.errors import NormlabError

FILE = Path("studies/claims.yaml")
PAIR_KINDS = ("higher", "similar", "costs", "steadier", "faster", "narrower-gap")


class _Claim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # narrowed to one Literal by each kind's model below
    id: str = Field(pattern=r"^[0-9a-z][0-9a-z-]*$")
    source: str = Field(min_length=1)  # which write-up and claim, e.g. "001 (c)"
    text: str = Field(min_length=1)
    study: str = Field(min_length=1)
    variants: list[str] | None = Field(default=None, min_length=1)
    pairs: list[tuple[str, str]] | None = Field(default=None, min_length=1)
    note: str = ""  # how the write-up's words became this test

    @model_validator(mode="after")
    def _one_way_to_name_variants(self) -> "_Claim":
        if (self.variants is None) == (self.pairs is None):
            raise ValueError("give either 'variants' or 'pairs' (a family), not both or neither")
        pair_kind = self.kind in PAIR_KINDS
        if not pair_kind and self.pairs is not None:
            raise ValueError(f"kind {self.kind!r} reads single variants: use 'variants'")
        if pair_kind and self.variants is not None and len(self.variants) != 2:
            raise ValueError("'variants' must be [A, B] for this kind (or use 'pairs')")
        return self

    @model_validator(mode="after")
    def _a_pair_of_two_variants(self) -> "_Claim":
        """A variant against itself is no comparison: a typo that no run can ever test."""
        key = "pairs" if self.pairs is not None else "variants"
        for unit in self.units:
            if len(unit) == 2 and unit[0] == unit[1]:
                raise ValueError(
                    f"'{key}' compares {unit[0]!r} with itself (allowed: two different variants)"
                )
        return self

    @property
    def units(self) -> list[tuple[str, ...]]:
        """What is tested: (A, B) pairs, or (A,) single variants."""
        if self.pairs is not None:
            return [tuple(p) for p in self.pairs]
        if self.kind in PAIR_KINDS:
            return [tuple(self.variants)]
        return [(v,) for v in self.variants]

    @property
    def names(self) -> list[str]:
        """Every variant the claim reads, in first-mention order."""
        return list(dict.fromkeys(v for unit in self.units for v in unit))


Metric = Literal["final", "best"]


class Higher(_Claim):
    kind: Literal["higher"]
    metric: Metric


class Similar(_Claim):
    kind: Literal["similar"]
    metric: Metric
    margin: float = Field(gt=0)  # points


class Costs(_Claim):
    kind: Literal["costs"]
    metric: Metric
    range: tuple[float, float]  # B − A, points, low ≤ high

    @model_validator(mode="after")
    def _ordered(self) -> "Costs":
        if self.range[0] > self.range[1]:
            raise ValueError("range must be [low, high] with low ≤ high")
        return self


class Reaches(_Claim):
    kind: Literal["reaches"]
    metric: Metric
    level: float = Field(gt=0, le=100)  # test accuracy, %


class Steadier(_Claim):
    kind: Literal["steadier"]
    series: Literal["test/loss", "test/acc", "train/loss", "train/acc"]
    last: int = Field(ge=2)  # epochs


class Faster(_Claim):
    kind: Literal["faster"]
    level: float = Field(gt=0, le=100)  # test accuracy, %


class NarrowerGap(_Claim):
    kind: Literal["narrower-gap"]


class Confusions(_Claim):
    kind: Literal["confusions"]
    classes: list[tuple[str, str]] = Field(min_length=1)
    share: float = Field(gt=0, lt=1)  # of all errors


Claim = Annotated[
    Higher | Similar | Costs | Reaches | Steadier | Faster | NarrowerGap | Confusions,
    Field(discriminator="kind"),
]


def _kinds() -> list[str]:
    """Every kind a claim may have, in the order of `Claim`."""
    models = get_args(get_args(Claim)[0])
    return [get_args(model.model_fields["kind"].annotation)[0] for model in models]


class Reported(BaseModel):
    """A number a write-up reported, shown beside normlab's (the replication tables)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1)  # "002"
    study: str
    variant: str
    metric: Metric  # what the write-up's number is: final epoch or best epoch
    acc: float = Field(ge=0, le=100)
    note: str = ""


class ClaimsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    claims: list[Claim] = Field(min_length=1)
    reported: list[Reported] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> "ClaimsFile":
        seen: set[str] = set()
        for claim in self.claims:
            if claim.id in seen:
                raise ValueError(f"claim id {claim.id!r} is used twice")
            seen.add(claim.id)
        return self


def _where(raw: Any, loc: tuple) -> str:
    """pydantic's location as the file's keys: claims[3] (id 002a).margin (tags dropped)."""
    parts: list[str] = []
    node = raw
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "id" in node and i == 1:
                parts[-1] += f" (id {node['id']})"
        elif i == 2 and loc[0] == "claims" and isinstance(node, dict) and node.get("kind") == part:
            continue  # the discriminated union's tag, not a key of the file
        else:
            parts.append(str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts) or "top level"


def load(path: Path = FILE) -> ClaimsFile:
    """Read and validate a claims file; any problem is one line naming the file and the key."""
    raw = yamlfile.mapping(yamlfile.read(path, "claims file"), path, "key 'claims'")
    try:
        return ClaimsFile.model_validate(raw)
    except ValidationError as exc:
        raise invalid(path, raw, exc, _kinds()) from None


def invalid(path: Path, raw: Any, exc: ValidationError, kinds: Sequence[str]) -> NormlabError:
    """A claims file's (v1 or v2) first validation error as one line naming the file and key."""
    err = yamlfile.first_error(exc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (a typo?)"
    if err["type"] == "union_tag_not_found":
        msg = f"missing key 'kind' (allowed: {', '.join(kinds)})"
    return NormlabError(f"{path}: {_where(raw, err['loc'])}: {msg}")


def check_studies(claimed: ClaimsFile, studies: Mapping[str, Study], path: Path = FILE) -> None:
    """What the file alone cannot tell, against the studies as their files write them: every
    variant a claim or a reported number names is one of its study's, and a `last: N` fits in
    its epochs. A claim would otherwise wait as 'cannot be tested yet' forever. A study that
    no file defines yet is no error: its claims wait for it."""
    for i, claim in enumerate(claimed.claims):
        study = studies.get(claim.study)
        if study is None:
            continue
        where = f"{path}: claims[{i}] (id {claim.id})"
        key = "pairs" if claim.pairs is not None else "variants"
        _of_the_study(f"{where}.{key}", claim.names, claim.study, study)
        if isinstance(claim, Steadier) and claim.last > study.epochs:
            raise NormlabError(
                f"{where}.last: {claim.last} epochs, but study {claim.study} runs "
                f"{study.epochs} (allowed: 2 to {study.epochs})"
            )
    for i, number in enumerate(claimed.reported):
        if number.study in studies:
            where = f"{path}: reported[{i}].variant"
            _of_the_study(where, [number.variant], number.study, studies[number.study])


def _of_the_study(where: str, names: Sequence[str], name: str, study: Study) -> None:
    unknown = [v for v in names if v not in study.variants]
    if unknown:
        raise NormlabError(
            f"{where}: {unknown[0]!r} is not a variant of study {name} "
            f"(variants: {', '.join(study.variants)})"
        )
