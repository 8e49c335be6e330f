"""Stage `validate`: check params.yaml and the dataset's recipe of recipes.yaml before any
stage's outputs are touched, and write them resolved to model/params.json.

DVC deletes a stage's outputs right before running it; validating first means a typo stops
`dvc repro` while every earlier result is still in place. The stages after it read
model/params.json, and DVC tracks its values as their params: a change to another dataset's
recipe changes nothing they depend on. It also stops, in one line, an experiment run by DVC's
queue or `--temp` (README: Studies and results, why).
"""

from pathlib import Path

from normlab import config
from normlab.errors import NormlabError, run_stage
from normlab.io import write_json
from normlab.paths import PARAMS_JSON
from normlab.train.prepare import validate

# DVC's queue and `dvc exp run --temp` train in a copy of the repository under this folder.
TEMP_WORKSPACES = ".dvc/tmp/exps/"


def refuse_temp_workspace(cwd: Path) -> None:
    """Such a copy holds only what git tracks: the CIFAR-10 proxy (data/mirror/) is missing, a
    relative NORMLAB_DATA_MIRROR resolves from .dvc/tmp/exps/, and with -j > 1 DVC's queue
    loses workers. A study does what the queue would, with records, resumes and leases."""
    if TEMP_WORKSPACES in cwd.as_posix() + "/":
        raise NormlabError(
            "dvc exp run --queue (or --temp) is not supported here: its copy of the repo in "
            f"{TEMP_WORKSPACES} lacks the gitignored data; train variants with `make study` "
            "(a study file, --jobs N) or one at a time with `dvc exp run` in the workspace"
        )


def main() -> None:
    refuse_temp_workspace(Path.cwd())
    params = config.load()
    validate(params)
    write_json(PARAMS_JSON, params.model_dump())
    print(
        f"params ok: {params.dataset}, variant {params.variant}, "
        f"recipe {params.recipe.model_dump()} → {PARAMS_JSON}"
    )


if __name__ == "__main__":
    run_stage(main)
