"""params.yaml and recipes.yaml → Params: the recipe a dataset picks, and model/params.json,
the resolved params the stages after validate read (bad values: test_bad_params.py)."""

import pytest

from conftest import parse, recipe_with
from normlab import config
from normlab.errors import NormlabError
from normlab.io import write_json


def test_proxy_trains_with_the_cifar10_recipe():
    params = parse({"dataset": "cifar10-proxy"})
    assert params.recipe == parse({"dataset": "cifar10"}).recipe
    assert params.recipe.model == "resnet"


def test_another_datasets_recipe_is_no_part_of_a_runs_params():
    """Why recipes.yaml is a file apart: a run's resolved params (model/params.json, which DVC's
    train and evaluate track) do not move when another dataset's recipe does."""
    mnist = parse().model_dump()
    assert (
        parse({"recipes.cifar10.lr": 0.5, "recipes.fashion-mnist.epochs": 3}).model_dump() == mnist
    )
    assert parse({"recipes.mnist.lr": 0.5}).recipe == recipe_with(lr=0.5)


def test_the_resolved_params_read_back_as_validate_wrote_them(tmp_path):
    params = parse({"norm": "gn", "train.epochs": 3})
    write_json(tmp_path / "params.json", params.model_dump())
    assert config.resolved(tmp_path / "params.json") == params


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "not found; run the validate stage first (dvc repro)"),
        ("{", "not readable JSON (JSONDecodeError); rerun the validate stage"),
        ('{"norm": "bn"}', "missing key 'dataset'; rerun the validate stage"),
    ],
)
def test_resolved_params_that_are_missing_or_stale_are_one_line(tmp_path, text, message):
    path = tmp_path / "params.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(NormlabError) as caught:
        config.resolved(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)
