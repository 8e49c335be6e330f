"""params.yaml → one validated, typed `Params` object, parsed once at each stage's entry.

The study axes (dataset, norm, groups, l1, l2, seed) are top-level keys so that
`dvc exp run -S norm=gn` reads naturally. The training recipe is per dataset
(`recipes.<dataset>`); any `train.<key>` other than `auto` overrides it, so changing only
`dataset` picks a sensible recipe while every knob stays one `-S` away.

Every validation problem becomes one line naming the key, the bad value and what is allowed.
"""

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from normlab import yamlkeys
from normlab.errors import InputError, NormlabError

Norm = Literal["bn", "gn", "ln", "in", "none"]
Dataset = Literal["mnist", "fashion-mnist", "cifar10", "cifar10-proxy"]
Device = Literal["auto", "cpu", "cuda", "mps"]
RecipeName = Literal["mnist", "fashion-mnist", "cifar10"]
# What L1 / L2 act on: conv and linear weights (normlab's), those plus the norms' scales (seed
# 002: every parameter named "weight"), or every parameter (the other seeds' code).
Scope = Literal["weights", "weights+norm-scales", "all"]
NAMED_MODELS = ("cnn", "cnn-pad", "resnet")  # models.build's nets; any other model is a layout
NORMS: tuple[Norm, ...] = get_args(Norm)
DATASETS: tuple[Dataset, ...] = get_args(Dataset)
# The proxy exists to exercise and tune the CIFAR-10 path, so it trains with CIFAR-10's recipe.
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

    model: str  # a name of NAMED_MODELS or a layout (normlab.layout), checked by _known_model
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    nesterov: bool = True  # Nesterov momentum whenever momentum > 0; False: plain momentum
    schedule: Literal["onecycle", "cosine", "constant", "step"]
    # step: lr × gamma after each of these epochs (1-based, increasing), e.g. StepLR(2, 0.09)
    # begun after epoch 12 is [14, 16, 18, 20, 22, 24]; other schedules take none.
    milestones: list[Annotated[StrictInt, Field(ge=1)]] = Field([], validate_default=True)
    gamma: float = Field(0.1, gt=0, le=1, validate_default=True)
    dropout: float = Field(ge=0, lt=1)
    l1_form: Literal["sum", "mean"] = "sum"  # l1 · Σ|w| | l1 · Σ over tensors of mean |w| (003)
    l1_scope: Scope = "weights"
    l2_scope: Scope = "weights"
    # Layouts only: Conv → ReLU → Norm (normlab's, the MNIST seeds') or Conv → Norm → ReLU (004);
    # bias: every conv has one (004), else only with norm=none.
    order: Literal["conv-relu-norm", "conv-norm-relu"] = Field(
        "conv-relu-norm", validate_default=True
    )
    bias: bool = Field(False, validate_default=True)
    rotate: float = Field(ge=0, le=180)  # degrees, ± uniform; 0 = off
    crop: int = Field(ge=0)  # random-crop padding in pixels; 0 = off
    flip: bool  # random horizontal flip
    cutout: int = Field(ge=0)  # side of one zeroed square in pixels; 0 = off
    jitter: float = Field(0.0, ge=0, le=1)  # brightness and contrast × U[1 - j, 1 + j]; 0 = off
    randaugment: float = Field(0.0, ge=0, le=1)  # share of training images given RandAugment
    tta: bool = (
        False  # test-time flip: score each test image by the mean logits of it and its mirror
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        """A named net, or a layout that parses; a bad layout's line names its token."""
        if model in NAMED_MODELS:
            return model
        from normlab import layout  # here: layout imports models → norms → this module

        try:
            layout.parse(model)
        except InputError as err:
            raise _error(f"neither {', '.join(NAMED_MODELS)} nor a layout: {err.detail}") from None
        return model

    @field_validator("milestones", "gamma")
    @classmethod
    def _step_only(cls, value: Any, info: ValidationInfo) -> Any:
        """milestones and gamma belong to the step schedule, which needs milestones."""
        schedule = info.data.get("schedule")
        if schedule is None:  # the schedule itself was bad: that is the error to report
            return value
        if info.field_name == "milestones" and schedule == "step":
            if not value:
                raise _error(
                    "schedule: step needs milestones, e.g. [8, 16] (lr × gamma after "
                    "epochs 8 and 16)"
                )
            if any(b <= a for a, b in zip(value, value[1:], strict=False)):
                raise _error("milestones must increase, e.g. [8, 16]")
        unused = value != cls.model_fields[info.field_name].default
        if schedule != "step" and unused:
            raise _error(f"only schedule: step uses {info.field_name} (schedule is {schedule})")
        return value

    @field_validator("order", "bias")
    @classmethod
    def _layouts_only(cls, value: Any, info: ValidationInfo) -> Any:
        """A named net is built as it always was: its order and biases are fixed."""
        model = info.data.get("model")
        if model in NAMED_MODELS and value != cls.model_fields[info.field_name].default:
            from normlab import layout

            same = {"cnn": layout.CNN, "cnn-pad": layout.CNN_PAD}.get(model)
            hint = f": {model} is the layout '{same}'; give that as model" if same else ""
            raise _error(
                f"model {model} is a fixed net; {info.field_name} applies to layouts{hint}"
            )
        return value


def _error(why: str) -> PydanticCustomError:
    """A validation error whose message is `why` exactly (no 'Value error, ' before it)."""
    return PydanticCustomError("recipe", "{why}", {"why": why})


class Data(_Strict):
    limit: int = Field(ge=0)  # 0 = full training set


class Engine(_Strict):
    """Speed knobs: they change how fast a run is; `amp` also the arithmetic (bf16 or float32)."""

    channels_last: bool
    amp: Literal["auto", "off", "bf16"]
    compile: bool
    eval_batch_size: int = Field(ge=1)
    threads: int = Field(ge=0)  # torch intra-op threads; 0 = torch's default (one per core)


MAX_SEED = 2**32 - 1  # numpy's and most tools' seed range; torch's ends at 2**63 - 1


class _Top(_Strict):
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


def _fail(exc: ValidationError, prefix: str = "") -> InputError:
    """The first problem, in one line; the count of the others (fix one, rerun, see the next)."""
    errors = exc.errors()
    more = (
        f" (and {len(errors) - 1} more problem{'s' * (len(errors) > 2)})" if len(errors) > 1 else ""
    )
    return InputError("params.yaml", _describe(errors[0], prefix) + more)


def parse(raw: Any) -> Params:
    """Validate a params mapping (as loaded from params.yaml) into `Params`."""
    if not isinstance(raw, dict):
        raise InputError("params.yaml", "expected a mapping of keys to values at the top level")
    try:
        top = _Top.model_validate(raw)
    except ValidationError as exc:
        raise _fail(exc) from None
    recipe_key = RECIPE_OF.get(top.dataset, top.dataset)
    if recipe_key not in top.recipes:
        raise InputError(
            "params.yaml",
            f"missing key 'recipes.{recipe_key}' (the recipe for dataset={top.dataset})",
        )
    unknown = sorted(set(top.train) - set(Recipe.model_fields))
    if unknown:
        allowed = ", ".join(Recipe.model_fields)
        raise InputError("params.yaml", f"unknown key 'train.{unknown[0]}' (allowed: {allowed})")
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
        raw = yamlkeys.load(path.read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: not found (run from the repository root)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NormlabError(f"{path}: cannot be read as text ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise NormlabError(
            f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    return parse(raw)
