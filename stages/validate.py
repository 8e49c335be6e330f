"""Stage `validate`: check params.yaml before any stage's outputs are touched.

DVC deletes a stage's outputs right before running it; validating first means a typo stops
`dvc repro` while every earlier result is still in place.
"""

from normlab import config
from normlab.errors import run_stage
from normlab.experiment import validate
from normlab.io import write_json

RESOLVED = "model/params.json"


def main() -> None:
    params = config.load()
    validate(params)
    write_json(RESOLVED, params.model_dump())
    print(f"params ok: {params.dataset}, variant {params.variant}, recipe {params.recipe.model_dump()} → {RESOLVED}")


if __name__ == "__main__":
    run_stage(main)
