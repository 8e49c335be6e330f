"""metrics/eval.json is built by one pure function from a history and an evaluation."""

import numpy as np
import pytest

from conftest import resolve, run_stage, write_params
from normlab.train.metrics import eval_metrics, learned, misclassified, per_class_acc

HISTORY = [
    {
        "epoch": 1,
        "train/acc": 90.0,
        "train/loss": 0.3,
        "test/acc": 95.0,
        "weights/abs_sum": 400.0,
        "weights/small_frac": 0.01,
    },
    {
        "epoch": 2,
        "train/acc": 97.123,
        "train/loss": 0.0912345,
        "test/acc": 97.5,
        "weights/abs_sum": 420.123456,
        "weights/small_frac": 0.0123456,
    },
    {
        "epoch": 3,
        "train/acc": 98.0,
        "train/loss": 0.05,
        "test/acc": 97.25,
        "weights/abs_sum": 430.0,
        "weights/small_frac": 0.02,
    },
]


def test_eval_metrics_from_history_and_evaluation():
    actual = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2, 0, 2])
    got = eval_metrics(
        history=HISTORY,
        acc=75.0,
        loss=0.123456789,
        actual=actual,
        predicted=predicted,
        classes=("a", "b", "c"),
        param_count=8690,
    )
    assert got == {
        "test": {"acc": 75.0, "loss": 0.12346},
        "train": {"acc": 98.0, "loss": 0.05},
        "gap": 23.0,
        "best": {"epoch": 2, "acc": 97.5},
        "final": {"epoch": 3, "acc": 97.25},
        "per_class_acc": {"a": 50.0, "b": 100.0, "c": 75.0},
        "learned": True,
        "params": 8690,
        "weights": {"abs_sum": 430.0, "small_frac": 0.02},
    }


def test_a_validation_split_picks_the_best_epoch_and_is_reported():
    """With val/* in the history the best epoch is the best val/acc's (epoch 3 here), never the
    test set's (epoch 2); eval.json gains `val` and says where the best epoch came from."""
    history = [
        {**h, "val/acc": acc, "val/loss": 0.1}
        for h, acc in zip(HISTORY, (96.0, 96.5, 97.0), strict=True)
    ]
    got = eval_metrics(
        history=history,
        acc=97.25,
        loss=0.1,
        actual=np.array([0]),
        predicted=np.array([0]),
        classes=("a",),
        param_count=1,
    )
    assert got["best"] == {"epoch": 3, "acc": 97.25, "on": "val"}
    assert got["val"] == {"acc": 97.0, "loss": 0.1}


@pytest.mark.parametrize(
    ("acc", "classes", "expected"),
    [
        (11.35, 10, False),
        (14.99, 10, False),
        (15.0, 10, True),
        (99.5, 10, True),
        (54.0, 2, False),
        (56.0, 2, True),
    ],
)
def test_learned_means_clear_of_chance(acc, classes, expected):
    assert learned(acc, classes) is expected


def test_per_class_and_misclassified_indices():
    actual = np.array([2, 1, 2, 0])
    predicted = np.array([2, 0, 1, 0])
    assert per_class_acc(actual, predicted, ("z", "o", "t")) == {"z": 100.0, "o": 0.0, "t": 50.0}
    assert misclassified(actual, predicted).tolist() == [1, 2]
    assert misclassified(actual, predicted, limit=1).tolist() == [1]


def test_a_run_that_stays_at_chance_is_marked_and_warned(synthetic_repo):
    """lr 50 without a norm: the loss stays finite (no divergence stop), but nothing is learned."""
    import json

    write_params(
        synthetic_repo,
        {
            "norm": "none",
            "train.lr": 50.0,
            "train.epochs": 1,
            "data.limit": 256,
            "train.batch_size": 64,
        },
    )
    for stage in ("train", "evaluate"):
        result = run_stage(resolve(synthetic_repo), stage)
        if result.returncode == 2 and "diverged" in result.stderr:
            pytest.skip("this seed diverged instead (a stop, not a silent success)")
        assert result.returncode == 0, result.stderr
    metrics = json.loads((synthetic_repo / "metrics/eval.json").read_text())
    assert metrics["learned"] is False
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "did not learn" in warning[0], result.stderr


def test_a_run_with_a_validation_split_logs_val_and_picks_its_best_epoch_on_it(synthetic_repo):
    """data.val through the real stages: the last 150 of the 600 images held out, 256 of the rest
    trained on; val acc logged every epoch; eval.json says the best epoch was picked on val."""
    import json

    write_params(synthetic_repo, {"data.val": 150, "data.limit": 256, "train.epochs": 2})
    trained = run_stage(resolve(synthetic_repo), "train")
    assert trained.returncode == 0, trained.stderr
    assert "256 train / 200 test images (+ 150 val: the last training images)" in trained.stdout
    assert sum("val acc" in line for line in trained.stdout.splitlines()) == 2
    evaluated = run_stage(synthetic_repo, "evaluate")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((synthetic_repo / "metrics/eval.json").read_text())
    assert metrics["best"]["on"] == "val" and set(metrics["val"]) == {"acc", "loss"}
