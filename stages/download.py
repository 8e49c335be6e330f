"""Stage `download`: verified copies of the dataset's files in data/raw/<dataset>/."""

from pathlib import Path

from normlab import config, data
from normlab.errors import run_stage
from normlab.experiment import RAW


def main() -> None:
    params = config.load()
    dest = RAW / params.dataset
    for name in data.spec(params.dataset).files:
        source = data.fetch(params.dataset, name, dest / name)
        print(f"{dest / name}  ← {source}  (md5 ok)")


if __name__ == "__main__":
    run_stage(main)
