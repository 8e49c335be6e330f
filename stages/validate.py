"""Stage `validate`: check params.yaml before any stage's outputs are touched.

DVC deletes a stage's outputs right before running it; validating first means a typo stops
`dvc repro` while every earlier result is still in place.
"""

from normlab import config
from normlab.errors import run_stage
from normlab.io import write_json
from normlab.outputs import PARAMS_JSON
from normlab.prepare import validate


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
