"""Stage `download`: verified copies of the dataset's files in data/raw/<dataset>/.

For CIFAR-10 the verified archive is kept (so a rerun re-checks its md5 instead of fetching
again) and its binary batches are unpacked beside it.
"""

from normlab import config
from normlab.data import fetch, specs
from normlab.errors import run_stage
from normlab.paths import RAW


def main() -> None:
    params = config.resolved()
    for line in fetch.download(params.dataset, RAW / params.dataset):
        print(line)
    if specs.spec(params.dataset).note:
        print(f"*** {specs.describe(params.dataset)} ***")


if __name__ == "__main__":
    run_stage(main)
