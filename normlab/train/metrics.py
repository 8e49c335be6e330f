"""What metrics/eval.json holds, and when a run counts as having learned.

eval.json is the contract between the evaluate stage, `dvc metrics diff` and the run records of
studies; `eval_metrics` builds it from values alone, so it is testable without a model.
metrics/eval.json holds only what the model computes, so equal params and seed give a
byte-identical file on one machine type; time and device go to metrics/run.json. The report
judges runs by the same `learned` rule, so a record and its report never disagree.
"""

import numpy as np

GRID = 25  # misclassified test images shown (and recorded) per run

CHANCE_MARGIN = 5.0  # points above chance (100 / classes) a run must reach to have learned


def learned(acc: float, classes: int) -> bool:
    """False for a run that ended within a few points of guessing: it learned nothing useful,
    whether or not its loss stayed finite (e.g. lr far too large, or InstanceNorm before GAP)."""
    return acc >= 100.0 / classes + CHANCE_MARGIN


def per_class_acc(actual: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Class name → test accuracy in percent, two decimals."""
    return {
        name: round(100.0 * float((predicted[actual == i] == i).mean()), 2)
        for i, name in enumerate(classes)
    }


def best_epoch(history: list[dict]) -> dict:
    """The history's best epoch: by val/acc where the run held out a validation split (the
    choice must not peek at the test set), else by test/acc (runs without one, as before
    data.val; such a best-epoch number is description, never a basis for a choice)."""
    key = "val/acc" if "val/acc" in history[-1] else "test/acc"
    return max(history, key=lambda h: h[key])


def eval_metrics(
    *,
    history: list[dict],
    acc: float,
    loss: float,
    actual: np.ndarray,
    predicted: np.ndarray,
    classes: tuple[str, ...],
    param_count: int,
) -> dict:
    """metrics/eval.json: the final evaluation (`acc`, `loss`) with the training history's
    last and best epochs (`best_epoch`), per-class accuracy, the weights' size, and whether the
    run learned at all (`learned`: a finite loss does not say so). A run with a validation split
    also gets `val` (its final epoch's val acc and loss) and `best.on: val`; one without keeps
    exactly the keys it always had."""
    best = best_epoch(history)
    last = history[-1]
    held = {}
    if "val/acc" in last:
        held = {"val": {"acc": round(last["val/acc"], 2), "loss": round(last["val/loss"], 5)}}
    picked_on = {"on": "val"} if held else {}
    return {
        "test": {"acc": round(acc, 2), "loss": round(loss, 5)},
        "train": {"acc": round(last["train/acc"], 2), "loss": round(last["train/loss"], 5)},
        "gap": round(last["train/acc"] - acc, 2),
        "best": {"epoch": best["epoch"], "acc": round(best["test/acc"], 2), **picked_on},
        "final": {"epoch": last["epoch"], "acc": round(last["test/acc"], 2)},
        **held,
        "per_class_acc": per_class_acc(actual, predicted, classes),
        "learned": learned(acc, len(classes)),
        "params": param_count,
        "weights": {
            "abs_sum": round(last["weights/abs_sum"], 4),
            "small_frac": round(last["weights/small_frac"], 5),
        },
    }


def misclassified(actual: np.ndarray, predicted: np.ndarray, limit: int = GRID) -> np.ndarray:
    """Test indices of the first `limit` wrong predictions: the images the grid shows."""
    return np.flatnonzero(actual != predicted)[:limit]
