"""Run records: one small JSON per finished run, committed with the results it backs.

A record holds everything the report draws from (per-epoch history, confusion counts, the
misclassified images' indices) and everything needed to trust it (resolved params, code
commit, host, data md5s), so any clone can rebuild `results/` and check a number without
DVC's local experiment refs. Reading validates strictly: a hand-edited value of the wrong
type or a missing key is one line naming the file and the key, never a wrong figure later.

A run's *identity* is what it computes: its resolved params without where and how fast it ran
(`device`, `engine`). The params are re-validated through the current `config.Params` first,
so a field added to the schema after a record was made (with a default equal to the old
behaviour, e.g. `recipe.tta: false`) takes its default, and the old record still matches.
"""

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from normlab import config
from normlab.errors import NormlabError

SCHEMA = 1
# Resolved params that say where and how fast a run went, not what it computed (amp's bf16 vs
# float32 moves only the last digits): runs differing only in these are the same run.
PLACE_AND_SPEED = ("device", "engine")
# An accuracy, in percent: 250 or -3 is a corrupt record, never a number for the report.
Percent = Annotated[float, Field(ge=0, le=100)]


def identity(params: dict) -> str:
    """The identity key of a run: its params through today's schema, minus place and speed."""
    try:
        parsed = config.Params.model_validate(params)
    except ValidationError as exc:
        raise NormlabError(_describe(exc, "params.")) from None
    return json.dumps(parsed.model_dump(exclude=set(PLACE_AND_SPEED)), sort_keys=True)


def _error(why: str) -> PydanticCustomError:
    """A validation error whose message is `why` exactly, naming its key itself (`_describe`)."""
    return PydanticCustomError("record", "{why}", {"why": why})


class _RecordModel(BaseModel):
    # strict: "99.4" (a string) is no accuracy; extra="forbid": a typo'd key is no silent extra.
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        allow_inf_nan=False,
        populate_by_name=True,
        serialize_by_alias=True,
    )


class Score(_RecordModel):
    acc: Percent
    loss: float


class Best(_RecordModel):
    acc: Percent
    epoch: int


class Misclassified(_RecordModel):
    """The first wrong test images, enough to redraw the grid: test-set indices and labels."""

    index: list[int]
    predicted: list[int]
    actual: list[int]
    confidence: list[float]


class Weights(_RecordModel):
    abs_sum: float
    small_frac: float


class DvcExperiment(_RecordModel):
    name: str
    commit: str


class _RunRecord(_RecordModel):
    """What every record of a run says: which run, what it computed, where and with what code."""

    version: Literal[1] = Field(alias="schema")  # `schema` in the file; pydantic owns .schema
    study: str
    variant: str
    seed: int
    dataset: str
    key: str  # identity key when it was written (matching recomputes it: see `identity`)
    params: dict[str, Any]
    device: str
    precision: str
    torch: str
    host: str
    code: str  # the code commit when the run started (records since issue 28; before: at the end)
    # Optional, so records made before issue 28 still read: when the run started and ended
    # (UTC, ISO 8601; the report computes which runs overlapped from them), and the code commit
    # at the end where it differs from `code` (the tree changed while the run trained).
    started: str | None = None
    ended: str | None = None
    code_at_end: str | None = None
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("params")
    @classmethod
    def _params_of_a_run(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Still valid params through today's schema (see `identity`), which the checks below
        read from."""
        try:
            identity(params)
        except NormlabError as err:
            raise _error(str(err)) from None
        return params

    @model_validator(mode="after")
    def _seed_is_the_params_seed(self) -> "_RunRecord":
        """The report labels a run by `seed`; it was computed with params.seed."""
        if self.seed != self.params["seed"]:
            raise _error(
                f"key 'seed': {self.seed}, but params.seed is {self.params['seed']} "
                "(allowed: the same seed)"
            )
        return self

    @property
    def source(self) -> Path | None:
        """The file this record was read from (None for one built in memory)."""
        return self._source

    def identity(self) -> str:
        return identity(self.params)

    def label(self) -> str:
        return f"{self.study}/{self.variant}/s{self.seed}"


class Record(_RunRecord):
    """One finished run (see the module docstring and .scratch/DESIGN.md for each field)."""

    history: list[dict[str, int | float]]
    final: Score
    best: Best
    train: Score
    gap: float
    learned: bool
    per_class_acc: dict[str, Percent]
    confusion: list[list[Annotated[int, Field(ge=0)]]]  # counts of test images
    misclassified: Misclassified
    param_count: int
    weights: Weights
    seconds: float
    data_md5: dict[str, str]
    packed: int  # runs trained together as one packed model (issue 17); 1 = trained alone
    concurrent: int  # runs this machine trained at once when this one ran (seconds include it)
    dvc: DvcExperiment | None
    # Runs with a validation split (params.val > 0): the final epoch's val acc and loss; `best`
    # is then the epoch of the best val/acc. Optional: absent from runs without one.
    val: Score | None = None

    @field_validator("history")
    @classmethod
    def _accuracies_are_percent(
        cls, history: list[dict[str, int | float]]
    ) -> list[dict[str, int | float]]:
        """test/acc, train/acc: the curves and the 'faster' claims read them as percent."""
        for i, epoch in enumerate(history):
            for key, value in epoch.items():
                if key.endswith("/acc") and not 0 <= value <= 100:
                    raise _error(f"key 'history.{i}.{key}': {value} (allowed: 0 to 100)")
        return history

    @model_validator(mode="after")
    def _an_entry_per_epoch(self) -> "Record":
        """The curves and the claims on the last epochs read one history entry per epoch."""
        epochs = self.params["recipe"]["epochs"]
        if len(self.history) != epochs:
            raise _error(
                f"key 'history': length {len(self.history)}, but params.recipe.epochs is "
                f"{epochs} (allowed: one entry per epoch)"
            )
        return self

    @model_validator(mode="after")
    def _a_row_and_a_column_per_class(self) -> "Record":
        """The confusion figures and claims index the matrix by the classes of per_class_acc."""
        side = len(self.per_class_acc)
        if len(self.confusion) != side or any(len(row) != side for row in self.confusion):
            raise _error(
                f"key 'confusion': not {side}×{side} (allowed: a row and a column per class "
                "of per_class_acc)"
            )
        return self


class Diverged(_RunRecord):
    """A run that diverged (loop.fit stopped it on a non-finite loss): no numbers, but a result.

    It sits beside where its record would go (store.diverged_path), so planning counts the run as
    done (a deterministic run diverges again) and the report names it; deleting the file
    retries the run."""

    error: str  # loop.fit's message: 'diverged at epoch E, step S (loss=nan): …'


def _describe(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's first error as one line: which key, what is wrong with it."""
    err = exc.errors()[0]
    key = prefix + ".".join(str(p) for p in err["loc"])
    if err["type"] == "record":  # our own checks name their key (`_error`)
        return err["msg"]
    if err["type"] == "missing":
        return f"missing key '{key}'"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{key}' (a typo?)"
    if err["type"] == "model_type" and not err["loc"]:
        return "expected a JSON object (a record's top level is {...})"
    return f"key '{key}': {err['msg']} (got {_shown(err['input'])})"


def _shown(value: Any, limit: int = 60) -> str:
    """A bad value as a message quotes it: cut short, so a wrong list or record is no page."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(raw: Any, source: Path | str, model: type = Record) -> Any:
    """A parsed JSON object → Record (or `model`); any problem is one line naming `source`
    and the key."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise NormlabError(f"{source}: {_describe(exc)}") from None


def done(records: list[Any]) -> dict[str, Any]:
    """identity key → the first record (path order) of that run (records or Diverged)."""
    found: dict[str, Any] = {}
    for record in records:
        found.setdefault(record.identity(), record)
    return found


def conflicts(records: list[Record]) -> list[str]:
    """One line per pair of records of the same run whose results differ (never merged silently).

    Two machines that trained the same run (e.g. the same shard twice) agree digit for digit
    only on the same machine type; the report must not quietly keep one of them."""
    first: dict[str, Record] = {}
    lines = []
    for record in records:
        key = record.identity()
        other = first.setdefault(key, record)
        if other is not record and (other.final, other.history) != (record.final, record.history):
            lines.append(
                f"{record.source}: same run as {other.source} with another result "
                f"(final acc {record.final.acc} vs {other.final.acc} %, hosts "
                f"{record.host!r} vs {other.host!r}); keep one of them"
            )
    return lines
