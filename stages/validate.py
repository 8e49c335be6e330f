"""Stage `validate`: check params.yaml and the dataset's recipe of recipes.yaml before any
stage's outputs are touched, and write them resolved to model/params.json.

DVC deletes a stage's outputs right before running it; validating first means a typo stops
`dvc repro` while every earlier result is still in place. The stages after it read
model/params.json, and DVC tracks its values as their params: a change to another dataset's
recipe changes nothing they depend on.
"""

from normlab import config
from normlab.errors import run_stage
from normlab.io import write_json
from normlab.paths import PARAMS_JSON
from normlab.train.prepare import validate


def main() -> None:
    params = config.load()
    validate(params)
    write_json(PARAMS_JSON, params.model_dump())
    print(
        f"params ok: {params.dataset}, variant {params.variant}, "
        f"recipe {params.recipe.model_dump()} → {PARAMS_JSON}"
    )


if __name__ == "__main__":
    run_stage(main)
