"""params.yaml → one validated, typed `Params` object, parsed once at each stage's entry.

The study axes (dataset, norm, groups, l1, l2, seed) are top-level keys so that
`dvc exp run -S norm=gn` reads naturally. The training recipe is per dataset
(`recipes.<dataset>`); any `train.<key>` other than `auto` overrides it, so changing only
`dataset` picks a sensible recipe while every knob stays one `-S` away.

Every validation problem becomes one line naming the key, the bad value and what is allowed.
"""

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from normlab.errors import NormlabError

Norm = Literal["bn", "gn", "ln", "in", "none"]
Dataset = Literal["mnist", "fashion-mnist", "cifar10", "cifar10-proxy"]
Device = Literal["auto", "cpu", "cuda", "mps"]
RecipeName = Literal["mnist", "fashion-mnist", "cifar10"]
NORMS: tuple[Norm, ...] = get_args(Norm)
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
# The proxy exists to exercise and tune the CIFAR-10 path, so it always trains with CIFAR-10's recipe.
RECIPE_OF = {"cifar10-proxy": "cifar10"}


class _Strict(BaseModel):
    # A typo such as `nrom:` must fail loudly, never be silently ignored; `lr: .inf` is no number.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads `epochs: true` as 1; a yes/no where a number belongs is a mistake."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("expected a number, not true/false")
        return value


class Recipe(_Strict):
    """How one variant is trained; the values live in params.yaml, per dataset.

    A key added after runs were recorded gets a default equal to what runs computed before it
    existed (`tta: False`): a record without the key then still names the same run (see
    normlab.analysis.records.identity), and params.yaml may omit it.
    """

    model: Literal["cnn", "cnn-pad", "resnet"]
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    schedule: Literal["onecycle", "cosine", "constant"]
    dropout: float = Field(ge=0, lt=1)
    rotate: float = Field(ge=0, le=180)  # degrees, ± uniform; 0 = off
    crop: int = Field(ge=0)  # random-crop padding in pixels; 0 = off
    flip: bool  # random horizontal flip
    cutout: int = Field(ge=0)  # side of one zeroed square in pixels; 0 = off
    tta: bool = False  # test-time flip: score each test image by the mean logits of it and its mirror


class Data(_Strict):
    limit: int = Field(ge=0)  # 0 = full training set


class Engine(_Strict):
    """Speed knobs: they change how fast a run is; `amp` also the arithmetic (bf16 or float32)."""

    channels_last: bool
    amp: Literal["auto", "off", "bf16"]
    compile: bool
    eval_batch_size: int = Field(ge=1)
    threads: int = Field(ge=0)  # torch intra-op threads; 0 = torch's default (one per core)


class _Top(_Strict):
    dataset: Dataset
    norm: Norm
    groups: int = Field(ge=1)
    l1: float = Field(ge=0)
    l2: float = Field(ge=0)
    seed: int = Field(ge=0)
    device: Device
    data: Data
    engine: Engine
    train: dict[str, Any]
    recipes: dict[RecipeName, dict[str, Any]]


class Params(_Strict):
    """The validated params of one run, with the recipe already resolved for its dataset."""

    dataset: Dataset
    norm: Norm
    groups: int
    l1: float
    l2: float
    seed: int
    device: Device
    limit: int
    engine: Engine
    recipe: Recipe

    @property
    def variant(self) -> str:
        """Short name used in titles and reports, e.g. 'gn4+l1=0.0001'."""
        return variant_name(self.norm, self.groups, self.l1, self.l2)


def variant_name(norm: str, groups: int, l1: float, l2: float) -> str:
    """The norm (gn with its groups) and any penalty, e.g. 'gn4+l1=0.0001', 'bn+l1=2e-05+l2=0.0002'."""
    name = f"gn{groups}" if norm == "gn" else norm
    return name + "".join(f"+{key}={value:g}" for key, value in (("l1", l1), ("l2", l2)) if value)


def _describe(err: dict, prefix: str = "") -> str:
    loc = prefix + ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"params.yaml: unknown key '{loc}' (a typo?)"
    if err["type"] == "missing":
        return f"params.yaml: missing key '{loc}'"
    return f"params.yaml: {loc} = {err['input']!r}: {err['msg']}"


def _fail(exc: ValidationError, prefix: str = "") -> NormlabError:
    return NormlabError("\n".join(_describe(e, prefix) for e in exc.errors()))


def parse(raw: Any) -> Params:
    """Validate a params mapping (as loaded from params.yaml) into `Params`."""
    if not isinstance(raw, dict):
        raise NormlabError("params.yaml: expected a mapping of keys to values at the top level")
    try:
        top = _Top.model_validate(raw)
    except ValidationError as exc:
        raise _fail(exc) from None
    recipe_key = RECIPE_OF.get(top.dataset, top.dataset)
    if recipe_key not in top.recipes:
        raise NormlabError(f"params.yaml: missing key 'recipes.{recipe_key}' (the recipe for dataset={top.dataset})")
    unknown = sorted(set(top.train) - set(Recipe.model_fields))
    if unknown:
        allowed = ", ".join(Recipe.model_fields)
        raise NormlabError(f"params.yaml: unknown key 'train.{unknown[0]}' (allowed: {allowed})")
    overrides = {k: v for k, v in top.train.items() if v != "auto"}
    merged = {**top.recipes[recipe_key], **overrides}
    try:
        recipe = Recipe.model_validate(merged)
    except ValidationError as exc:
        bad = exc.errors()[0]["loc"][0] if exc.errors()[0]["loc"] else ""
        raise _fail(exc, "train." if bad in overrides else f"recipes.{recipe_key}.") from None
    fields = top.model_dump(exclude={"data", "train", "recipes", "engine"})
    return Params(**fields, limit=top.data.limit, engine=top.engine, recipe=recipe)


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; any problem is a one-line `NormlabError`."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise NormlabError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse(raw)
