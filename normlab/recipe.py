"""What a training recipe is: each key of a dataset's section of recipes.yaml (and of the
`train.<key>` overrides in params.yaml), its allowed values, and the checks across keys.

Apart from normlab.config (which reads the files and resolves a run's params) so that each
reads as one thing; `Strict` is the base of every params model, here and there.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from normlab.errors import InputError
from normlab.nets import layout
from normlab.types import Order, Scope


class Strict(BaseModel):
    """A params model: a typo such as `nrom:` fails loudly, never silently ignored; `lr: .inf`
    is no number; values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads `epochs: true` as 1; a yes/no where a number belongs is a mistake."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("expected a number, not true/false")
        return value


class Recipe(Strict):
    """How one variant is trained; the values live in recipes.yaml, per dataset.

    A key added after runs were recorded gets a default equal to what runs computed before it
    existed (`tta: False`): a record without the key then still names the same run (see
    normlab.analysis.study.records.identity), and recipes.yaml may omit it.
    """

    model: str  # a name of layout.MODELS or a layout (normlab.nets.layout): _known_model
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
    order: Order = Field("conv-relu-norm", validate_default=True)
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
        if model in layout.MODELS:
            return model
        try:
            layout.parse(model)
        except InputError as err:
            raise _error(f"neither {', '.join(layout.MODELS)} nor a layout: {err.detail}") from None
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
        if model in layout.MODELS and value != cls.model_fields[info.field_name].default:
            same = layout.NAMED.get(model)
            hint = f": {model} is the layout '{same}'; give that as model" if same else ""
            raise _error(
                f"model {model} is a fixed net; {info.field_name} applies to layouts{hint}"
            )
        return value


def _error(why: str) -> PydanticCustomError:
    """A validation error whose message is `why` exactly (no 'Value error, ' before it)."""
    return PydanticCustomError("recipe", "{why}", {"why": why})
