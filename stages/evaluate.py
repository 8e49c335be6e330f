"""Stage `evaluate`: score model/model.pt on the test set → metrics/ and plots/.

metrics/eval.json (normlab.train.metrics.eval_metrics) holds only what the model computes; time,
device and precision go to metrics/run.json.
"""

import sys

import numpy as np
import torch

from normlab import config
from normlab.data import specs
from normlab.errors import NormlabError, run_stage
from normlab.io import write_json, write_text
from normlab.paths import (
    CONFUSION_CSV,
    CONFUSION_PNG,
    EVAL_JSON,
    MISCLASSIFIED_PNG,
    MODEL,
    RUN_JSON,
)
from normlab.train import plots, run
from normlab.train.metrics import CHANCE_MARGIN, best_epoch, learned, misclassified
from normlab.train.prepare import prepare


def load_model(path, device: torch.device) -> dict:
    """model.pt's state, loaded as data only (weights_only: no pickled code runs)."""
    if not path.exists():
        raise NormlabError(f"{path}: not found; run the train stage first (dvc repro)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpicklable, truncated or foreign: one line, not a traceback
        raise NormlabError(
            f"{path}: not a loadable normlab model ({type(err).__name__}); rerun train"
        ) from None


def main() -> None:
    params = config.resolved()
    prep = prepare(params)
    state = load_model(MODEL, prep.device)
    prep.model.load_state_dict(state["model"])
    history = state["history"]
    scored = run.score(params, prep, history)
    result, actual, predicted = scored.evaluation, scored.actual, scored.predicted
    write_json(EVAL_JSON, scored.metrics)
    # `data` names the dataset as results must show it: a proxy run says PROXY here and in titles.
    write_json(
        RUN_JSON,
        {
            "data": specs.describe(params.dataset),
            "seconds": round(state["seconds"], 2),
            "seconds_per_epoch": round(state["seconds"] / len(history), 3),
            "device": state["device"],
            "precision": state["precision"],
            "torch": state["torch"],
        },
    )
    names = np.array(prep.classes)
    write_text(
        CONFUSION_CSV,
        "actual,predicted\n"
        + "".join(f"{a},{p}\n" for a, p in zip(names[actual], names[predicted], strict=True)),
    )
    title = f"{specs.describe(params.dataset)}\n{params.variant}: test acc {result.acc:.2f}%"
    plots.confusion_png(
        plots.confusion_matrix(actual, predicted, len(names)), prep.classes, title, CONFUSION_PNG
    )
    wrong = misclassified(actual, predicted)
    images = prep.test.images[torch.from_numpy(wrong).to(prep.device)].cpu().numpy()
    plots.misclassified_png(
        images,
        actual[wrong],
        predicted[wrong],
        result.confidence.numpy()[wrong],
        prep.classes,
        title,
        MISCLASSIFIED_PNG,
    )
    if not learned(result.acc, len(prep.classes)):
        print(
            f"warning: test acc {result.acc:.2f}% is within {CHANCE_MARGIN:g} points of chance "
            f"({100 / len(prep.classes):g}%): this run did not learn "
            f"({EVAL_JSON}: learned: false)",
            file=sys.stderr,
        )
    best = best_epoch(history)
    on = ", picked on val" if "val/acc" in best else ""
    print(
        f"test acc {result.acc:.2f}% (best {best['test/acc']:.2f}% at epoch {best['epoch']}{on}), "
        f"loss {result.loss:.4f}; wrote {EVAL_JSON}, {RUN_JSON}, plots/"
    )


if __name__ == "__main__":
    run_stage(main)
