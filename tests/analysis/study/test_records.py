"""Run records: round trip, one-line errors for corrupt files, and the identity-key rule."""

import copy
import json
import re

import numpy as np
import pytest

from helpers import diverged_dict, record_dict, resolved, write_raw
from normlab.analysis.study import records, store
from normlab.errors import NormlabError


def test_a_record_round_trips_write_validate_read(tmp_path):
    raw = record_dict()
    path = tmp_path / "runs/norms/bn/s0.json"
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    written = store.write(path, records.validate(raw, "memory"), images)
    assert written == [store.sidecar(path), path]
    assert json.loads(path.read_text()) == raw  # the file holds exactly the record, `schema` too
    again = store.read(path)
    later = {"started", "ended", "code_at_end", "val"}  # optional since issue 28: unknown here
    assert again.model_dump(by_alias=True, exclude=later) == raw and again.source == path
    assert again.started is again.ended is again.code_at_end is again.val is None
    assert np.array_equal(np.load(store.sidecar(path)), images)
    assert [r.label() for r in store.read_all(tmp_path)] == ["norms/bn/s0"]
    assert store.read_all(tmp_path / "nothing-here") == []


def test_a_run_with_a_validation_split_keeps_it_in_params_val_and_history(tmp_path):
    """data.val > 0: params.val, the record's final `val` score and val/* in the history all
    round-trip; the same params with val 0 (or none) are another run (another identity), and
    a val of 0 dumps as params that never had the key (records written before it match)."""
    raw = record_dict()
    raw["params"] = {**raw["params"], "val": 5000}
    raw["key"] = records.identity(raw["params"])
    raw["val"] = {"acc": 99.1, "loss": 0.03}
    raw["history"] = [{**h, "val/acc": 99.0, "val/loss": 0.03} for h in raw["history"]]
    path = tmp_path / "runs/norms/bn/s0.json"
    store.write(path, records.validate(raw, "memory"))
    back = store.read(path)
    assert back.val.acc == 99.1 and back.params["val"] == 5000
    assert json.loads(path.read_text()) == raw
    plain = record_dict()["params"]
    assert records.identity(raw["params"]) != records.identity(plain)
    assert records.identity({**plain, "val": 0}) == records.identity(plain)


def _without(raw: dict, dotted: str) -> dict:
    out = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    del node[leaf]
    return out


def _with(raw: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: _without(r, "final.acc"), "missing key 'final.acc'"),
        (lambda r: _without(r, "schema"), "missing key 'schema'"),
        (
            lambda r: _with(r, "final.acc", "99.47"),
            "key 'final.acc': Input should be a valid number",
        ),
        (lambda r: _with(r, "seed", 1.5), "key 'seed': Input should be a valid integer"),
        (lambda r: _with(r, "confusion", [[1, 2], [3, "x"]]), "key 'confusion.1.1'"),
        (lambda r: _with(r, "schema", 2), "key 'schema'"),
        (lambda r: _with(r, "finale", {}), "unknown key 'finale'"),
        (lambda r: _with(r, "params.norm", "bm"), "key 'params.norm'"),
        (lambda r: _without(r, "params.recipe.lr"), "missing key 'params.recipe.lr'"),
    ],
)
def test_a_corrupt_record_is_one_line_naming_the_file_and_key(tmp_path, change, message):
    path = write_raw(tmp_path / "runs/norms/bn/s0.json", change(record_dict()))
    with pytest.raises(NormlabError) as err:
        store.read_all(tmp_path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: _with(r, "final.acc", 250.0), "key 'final.acc': Input should be less than"),
        (lambda r: _with(r, "best.acc", -1.0), "key 'best.acc': Input should be greater than"),
        (lambda r: _with(r, "train.acc", 100.5), "key 'train.acc': Input should be less"),
        (
            lambda r: _with(r, "per_class_acc.3", 101.0),
            "key 'per_class_acc.3': Input should be less than or equal to 100",
        ),
        (
            lambda r: _with(r, "history", [r["history"][0], {**r["history"][1], "test/acc": 990}]),
            "key 'history.1.test/acc': 990 (allowed: 0 to 100)",
        ),
        (
            lambda r: _with(r, "history", [{**r["history"][0], "train/acc": -5}, r["history"][1]]),
            "key 'history.0.train/acc': -5 (allowed: 0 to 100)",
        ),
        (
            lambda r: _with(r, "history", []),
            "key 'history': length 0, but params.recipe.epochs is 2 (allowed: one entry per",
        ),
        (
            lambda r: _with(r, "history", r["history"][:1]),
            "key 'history': length 1, but params.recipe.epochs is 2",
        ),
        (lambda r: _with(r, "seed", 3), "key 'seed': 3, but params.seed is 0 (allowed: the same"),
        (
            lambda r: _with(r, "confusion", r["confusion"][:9]),
            "key 'confusion': not 10×10 (allowed: a row and a column per class of per_class_acc)",
        ),
        (
            lambda r: _with(r, "confusion", [row[:9] for row in r["confusion"]]),
            "key 'confusion': not 10×10",
        ),
        (
            lambda r: _without(r, "per_class_acc.9"),
            "key 'confusion': not 9×9",
        ),
        (
            lambda r: _with(r, "confusion", [[-1, *row[1:]] for row in r["confusion"]]),
            "key 'confusion.0.0': Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_record_that_no_run_can_produce_is_one_line_naming_file_and_key(
    tmp_path, change, message
):
    """Valid JSON of the right types, but nonsense: never a number in the report."""
    path = write_raw(tmp_path / "runs/norms/bn/s0.json", change(record_dict()))
    with pytest.raises(NormlabError) as err:
        store.read_all(tmp_path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name, raw, model",
    [
        ("s1.json", record_dict(), records.Record),
        ("s10.json", record_dict(), records.Record),
        ("s0.diverged.json", None, records.Diverged),
    ],
)
def test_a_record_named_for_another_seed_is_one_line(tmp_path, name, raw, model):
    """A plan takes s<N>.json for seed N's run: a record of seed 0 (2) there is refused."""
    raw = raw or diverged_dict()
    path = write_raw(tmp_path / name, raw)
    seed = re.match(r"s(\d+)", name)[1]
    with pytest.raises(NormlabError) as err:
        store.read(path, model)
    expected = f"{path}: key 'seed': {raw['seed']}, but the file is named for seed {seed}"
    assert str(err.value).startswith(expected), str(err.value)


@pytest.mark.parametrize("top", [[record_dict()] * 50, "s" * 5000, 99.47, None])
def test_a_record_that_is_no_json_object_says_so_and_does_not_quote_it(tmp_path, top):
    path = write_raw(tmp_path / "s0.json", top)
    with pytest.raises(NormlabError) as err:
        store.read(path)
    assert str(err.value) == f"{path}: expected a JSON object (a record's top level is {{...}})"


def test_a_long_bad_value_is_quoted_cut_short(tmp_path):
    path = write_raw(tmp_path / "s0.json", _with(record_dict(), "confusion", "9" * 5000))
    with pytest.raises(NormlabError) as err:
        store.read(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key 'confusion': Input should be a valid list (got '99")
    assert message.endswith("...)") and len(message) < len(str(path)) + 150, message


@pytest.mark.parametrize(
    "text", ["", '{"schema": 1,', "not json", "\xff\xfe", "[" * 100_000, "9" * 5000]
)
def test_a_record_that_is_not_json_is_one_line(tmp_path, text):
    path = tmp_path / "s0.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(NormlabError, match=r"s0\.json: not a JSON record") as err:
        store.read(path)
    assert "\n" not in str(err.value)


def test_a_record_that_cannot_be_read_is_one_line(tmp_path):
    folder = tmp_path / "runs" / "s0.json"
    folder.mkdir(parents=True)
    with pytest.raises(NormlabError) as err:
        store.read_all(tmp_path)
    assert str(err.value) == f"{folder}: cannot read the record (Is a directory)"


def test_identity_is_what_a_run_computes_not_where_it_ran():
    base = resolved()
    assert records.identity(base) == records.identity(resolved())
    elsewhere = {
        **base,
        "device": "cuda",
        "engine": {**base["engine"], "amp": "bf16", "threads": 1},
    }
    assert records.identity(elsewhere) == records.identity(base)
    assert records.identity(resolved({"train.epochs": 5})) != records.identity(base)
    assert records.identity({**base, "l1": 1e-4}) != records.identity(base)
    assert records.identity({**base, "seed": 1}) != records.identity(base)


def test_a_record_from_before_a_recipe_key_existed_still_matches(tmp_path):
    """One rule, no list of exceptions: a key added later defaults to the old behaviour."""
    params = resolved({"train.epochs": 2})
    assert params["recipe"]["tta"] is False  # MNIST's recipe
    older = _without(record_dict(params), "params.recipe.tta")
    path = write_raw(tmp_path / "runs/norms/bn/s0.json", older)
    record = store.read(path)
    assert "tta" not in record.params["recipe"]
    assert record.identity() == records.identity(params)
    assert records.done([record]).keys() == {records.identity(params)}
    tta = resolved({"train.epochs": 2, "train.tta": True})
    assert records.identity(tta) != record.identity()


def test_records_of_the_same_run_with_different_results_are_reported(tmp_path):
    a = write_raw(tmp_path / "a/runs/norms/bn/s0.json", record_dict(acc=99.47))
    write_raw(tmp_path / "b/runs/norms/bn/s0.json", record_dict(acc=99.47))  # agrees: fine
    c = write_raw(tmp_path / "c/runs/norms/bn/s0.json", record_dict(acc=99.45))
    found = store.read_all(tmp_path)
    assert len(records.done(found)) == 1
    [line] = records.conflicts(found)
    assert line.startswith(f"{c}: same run as {a}") and "99.45 vs 99.47" in line


def test_a_divergence_record_round_trips_and_is_no_record(tmp_path):
    record = tmp_path / "runs/norms/bn/s2.json"
    path = store.diverged_path(record)
    assert path.name == "s2.diverged.json"
    written = store.write_diverged(path, records.Diverged.model_validate(diverged_dict()))
    back = store.read(written, records.Diverged)
    assert json.loads(written.read_text()) == diverged_dict()  # no optional key added
    later = {"started", "ended", "code_at_end"}  # optional since issue 28: unknown here
    assert back.model_dump(mode="json", by_alias=True, exclude=later) == diverged_dict()
    assert back.started is back.ended is back.code_at_end is None
    assert back.source == path and back.identity() == diverged_dict()["key"]
    assert store.read_diverged(tmp_path) == [back] and store.read_all(tmp_path) == []


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("error"), "missing key 'error'"),
        (lambda d: d.update(seed="2"), "key 'seed': "),
        (lambda d: d.update(seed=3), "key 'seed': 3, but params.seed is 2"),
        (lambda d: d.update(extra=1), "unknown key 'extra'"),
    ],
)
def test_a_corrupt_divergence_record_is_one_line_naming_file_and_key(tmp_path, change, message):
    raw = diverged_dict()
    change(raw)
    path = tmp_path / "s2.diverged.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(NormlabError) as err:
        store.read_diverged(tmp_path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
