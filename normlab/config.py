"""params.yaml and recipes.yaml → one validated, typed `Params` object, parsed once, by the
validate stage, which writes it resolved to model/params.json for the stages after it.

The study axes (dataset, norm, groups, l1, l2, seed) are top-level keys of params.yaml so that
`dvc exp run -S norm=gn` reads naturally. The training recipe is per dataset, in recipes.yaml
(a file of its own: editing one dataset's recipe must not touch the params every MNIST stage
tracks); any `train.<key>` of params.yaml other than `auto` overrides it, so changing only
`dataset` picks a sensible recipe while every knob stays one `-S` away.

Every validation problem becomes one line naming the file, the key, the bad value and what is
allowed. What each recipe key allows: normlab.recipe.
"""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

from normlab import paths, yamlfile
from normlab.errors import InputError, NormlabError
from normlab.recipe import Recipe, Strict
from normlab.types import Dataset, Device, Norm, RecipeName

# The proxy exists to exercise and tune the CIFAR-10 path, so it trains with CIFAR-10's recipe.
RECIPE_OF = {"cifar10-proxy": "cifar10"}


class Data(Strict):
    limit: int = Field(ge=0)  # 0 = full training set (after the validation split)
    val: int = Field(ge=0)  # the last N training images held out for validation; 0 = none


class Engine(Strict):
    """Speed knobs: they change how fast a run is; `amp` also the arithmetic (bf16 or float32)."""

    channels_last: bool
    amp: Literal["auto", "off", "bf16"]
    compile: bool
    eval_batch_size: int = Field(ge=1)
    threads: int = Field(ge=0)  # torch intra-op threads; 0 = torch's default (one per core)


MAX_SEED = 2**32 - 1  # numpy's and most tools' seed range; torch's ends at 2**63 - 1


class _Top(Strict):
    dataset: Dataset
    norm: Norm
    groups: int = Field(ge=1)
    l1: float = Field(ge=0)
    l2: float = Field(ge=0)
    seed: int = Field(ge=0, le=MAX_SEED)
    device: Device
    data: Data
    engine: Engine
    train: dict[str, Any]


# recipes.yaml: a recipe per dataset; only the one a run's dataset picks is validated as a Recipe.
_RECIPES = TypeAdapter(dict[RecipeName, dict[str, Any]])


class Params(Strict):
    """The validated params of one run, with the recipe already resolved for its dataset."""

    dataset: Dataset
    norm: Norm
    groups: int
    l1: float
    l2: float
    seed: int
    device: Device
    limit: int
    # Defaults to 0 so that params written before data.val existed (run records, params.json)
    # still read; a 0 is left out of the dump (below), so they also compare and hash as before.
    val: int = 0
    engine: Engine
    recipe: Recipe

    @model_serializer(mode="wrap")
    def _no_val_as_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Params without a validation split dump exactly as before data.val existed: the same
        model/params.json, checkpoint fingerprints and run identities (records match)."""
        dumped = handler(self)
        if self.val == 0:
            dumped.pop("val", None)
        return dumped

    @property
    def variant(self) -> str:
        """Short name used in titles and reports, e.g. 'gn4+l1=0.0001'."""
        return variant_name(self.norm, self.groups, self.l1, self.l2)


def variant_name(norm: str, groups: int, l1: float, l2: float) -> str:
    """The norm (gn with its groups) and any penalty: 'gn4+l1=0.0001', 'bn+l1=2e-05+l2=0.0002'."""
    name = f"gn{groups}" if norm == "gn" else norm
    return name + "".join(f"+{key}={value:g}" for key, value in (("l1", l1), ("l2", l2)) if value)


def _describe(err: dict, prefix: str = "") -> str:
    loc = prefix + ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}' (a typo?)"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    return f"{loc} = {err['input']!r}: {err['msg']}"


def _fail(exc: ValidationError, source: str | Path, prefix: str = "") -> InputError:
    """The first problem, in one line; the count of the others (fix one, rerun, see the next)."""
    errors = exc.errors()
    more = (
        f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    )
    return InputError(str(source), _describe(errors[0], prefix) + more)


def parse(raw: dict, recipes: dict) -> Params:
    """Validate params.yaml's mapping, with the recipe recipes.yaml has for its dataset, into
    `Params`."""
    if "recipes" in raw:  # where recipes lived before recipes.yaml: say where they are now
        raise InputError(
            str(paths.PARAMS),
            f"unknown key 'recipes': recipes are in {paths.RECIPES} (edit them there, or "
            "override one value for every dataset with train.<key>, e.g. -S train.lr=0.2)",
        )
    try:
        top = _Top.model_validate(raw)
    except ValidationError as exc:
        raise _fail(exc, paths.PARAMS) from None
    try:
        recipes = _RECIPES.validate_python(recipes)
    except ValidationError as exc:
        raise _fail(exc, paths.RECIPES) from None
    name = RECIPE_OF.get(top.dataset, top.dataset)
    if name not in recipes:
        raise InputError(
            str(paths.RECIPES), f"missing key '{name}' (the recipe for dataset={top.dataset})"
        )
    unknown = sorted(set(top.train) - set(Recipe.model_fields))
    if unknown:
        allowed = ", ".join(Recipe.model_fields)
        raise InputError(
            str(paths.PARAMS), f"unknown key 'train.{unknown[0]}' (allowed: {allowed})"
        )
    overrides = {k: v for k, v in top.train.items() if v != "auto"}
    try:
        recipe = Recipe.model_validate({**recipes[name], **overrides})
    except ValidationError as exc:
        bad = exc.errors()[0]["loc"][0] if exc.errors()[0]["loc"] else ""
        if bad in overrides:
            raise _fail(exc, paths.PARAMS, "train.") from None
        raise _fail(exc, paths.RECIPES, f"{name}.") from None
    fields = top.model_dump(exclude={"data", "train", "engine"})
    return Params(
        **fields, limit=top.data.limit, val=top.data.val, engine=top.engine, recipe=recipe
    )


def load(path: str | Path = paths.PARAMS, recipes: str | Path = paths.RECIPES) -> Params:
    """Read and validate params.yaml and recipes.yaml; any problem is a one-line
    `NormlabError`."""
    hint = " (run from the repository root)"
    raw = yamlfile.mapping(yamlfile.read(path, "params file", hint), path, "keys such as 'norm'")
    book = yamlfile.read(recipes, "recipes file", hint)
    return parse(raw, yamlfile.mapping(book, recipes, "a recipe per dataset, e.g. 'mnist'"))


def resolved(path: str | Path = paths.PARAMS_JSON) -> Params:
    """The params the validate stage accepted, resolved (model/params.json): what the stages
    after it run with, so that they depend on these values and not on every dataset's recipe."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: not found; run the validate stage first (dvc repro)") from None
    except (OSError, ValueError) as exc:
        raise NormlabError(
            f"{path}: not readable JSON ({exc.__class__.__name__}); rerun the validate stage"
        ) from None
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise NormlabError(
            f"{path}: {_describe(exc.errors()[0])}; rerun the validate stage (dvc repro)"
        ) from None


def check_batch(batch_size: int, n: int) -> None:
    """A batch must fit in the training images: the loop takes equal batches only."""
    if batch_size > n:
        raise InputError(
            str(paths.PARAMS),
            f"train.batch_size = {batch_size}: larger than the {n} "
            f"training images (allowed: 1..{n}, or raise data.limit)",
        )
