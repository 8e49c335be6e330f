"""What a run costs, in units every host computes alike: for taking runs longest first and for
splitting a plan into shards of equal work.

Seconds cannot do this: they differ between machines (a GPU, a busy CPU) and exist only once a
similar run has a record. A cost does: epochs × steps per epoch × the work of one step, in
*MNIST steps* (one step of the MNIST recipe, batch 64, on the `cnn`). A step's work grows with
its batch plus a fixed part worth about 30 images, and with the dataset's net. Both numbers are
fitted on this repository's records (2-CPU host): the `cnn` took 10, 14, 21 and 35 ms a step at
batch 16, 32, 64 and 128, and a CIFAR `resnet` step at batch 128 took 5.5× an MNIST `cnn` step at
batch 128, which makes a 20-epoch CIFAR run about 4× the 20-epoch MNIST recipe, as measured.
"""

from collections.abc import Sequence

from normlab.analysis.study.plan import PlannedRun
from normlab.data import specs

STEP_IMAGES = 30  # the fixed work of one step, in images (fitted: see the module docstring)
REFERENCE_BATCH = 64  # the MNIST recipe's batch: its step costs 1
# One step's work relative to an MNIST `cnn` step at the same batch: the net each recipe trains.
DATASET_FACTOR = {"mnist": 1.0, "fashion-mnist": 1.0, "cifar10": 5.5, "cifar10-proxy": 5.5}


def steps_per_epoch(params: dict) -> int:
    """Training steps in one epoch, as loop.fit takes them: equal batches, the rest dropped.
    Its images: `limit`, else the training set less the validation split (`val`, held out
    first: readers.load), which records made before data.val existed lack."""
    images = params["limit"] or specs.spec(params["dataset"]).n_train - params.get("val", 0)
    return images // params["recipe"]["batch_size"]


def cost(params: dict) -> float:
    """The run's work in MNIST steps: epochs × steps per epoch × one step's work."""
    recipe, dataset = params["recipe"], params["dataset"]
    batch = recipe["batch_size"]
    step = (batch + STEP_IMAGES) / (REFERENCE_BATCH + STEP_IMAGES) * DATASET_FACTOR[dataset]
    return recipe["epochs"] * steps_per_epoch(params) * step


def longest_first(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The runs by falling cost, ties by identity key and label: the order every runner takes
    them in, so the last runs to start are the shortest and runners sharing a study end close
    together."""
    return sorted(runs, key=lambda r: (-cost(r.params), r.key, r.label))


def shards(runs: Sequence[PlannedRun], count: int) -> list[list[PlannedRun]]:
    """`count` disjoint slices of equal work: each run (longest first) goes to the slice with
    the least cost so far, the lowest-numbered on a tie. The most and least loaded slices then
    differ by at most one run's cost, and every machine computes the same slices from the same
    plan. A run planned twice (same key) lands in one slice."""
    loads = [0.0] * count
    where: dict[str, int] = {}
    for run in longest_first(runs):
        if run.key not in where:
            where[run.key] = min(range(count), key=lambda i: (loads[i], i))
            loads[where[run.key]] += cost(run.params)
    return [[r for r in runs if where[r.key] == i] for i in range(count)]
