"""Stage `evaluate`: score model/model.pt on the test set → metrics/ and plots/.

metrics/eval.json holds only what the model computes, so equal params and seed give a
byte-identical file; time and device go to metrics/run.json.
"""

from pathlib import Path

import numpy as np
import torch

from normlab import config, data, plots
from normlab.engine import evaluate
from normlab.errors import NormlabError, run_stage
from normlab.experiment import prepare
from normlab.io import write_json, write_text
from normlab.models import count_params

MODEL = Path("model/model.pt")


def main() -> None:
    params = config.load()
    exp = prepare(params)
    if not MODEL.exists():
        raise NormlabError(f"{MODEL}: not found; run the train stage first (dvc repro)")
    try:  # weights_only: a model file is data, never code to run
        state = torch.load(MODEL, map_location=exp.device, weights_only=True)
    except Exception as err:  # unpicklable, truncated or foreign: one line, not a traceback
        raise NormlabError(f"{MODEL}: not a loadable normlab model ({type(err).__name__}); rerun train") from None
    exp.model.load_state_dict(state["model"])
    result = evaluate(exp.model, exp.test, exp.batcher, params.engine.eval_batch_size, exp.autocast,
                      params.recipe.tta)
    actual = exp.test.labels.cpu().numpy()
    predicted = result.predictions.numpy()
    history = state["history"]
    best = max(history, key=lambda h: h["test/acc"])
    last = history[-1]
    per_class = {name: round(100.0 * float((predicted[actual == i] == i).mean()), 2)
                 for i, name in enumerate(exp.classes)}
    write_json("metrics/eval.json", {
        "test": {"acc": round(result.acc, 2), "loss": round(result.loss, 5)},
        "train": {"acc": round(last["train/acc"], 2), "loss": round(last["train/loss"], 5)},
        "gap": round(last["train/acc"] - result.acc, 2),
        "best": {"epoch": best["epoch"], "acc": round(best["test/acc"], 2)},
        "final": {"epoch": last["epoch"], "acc": round(last["test/acc"], 2)},
        "per_class_acc": per_class,
        "params": count_params(exp.model),
        "weights": {"abs_sum": round(last["weights/abs_sum"], 4), "small_frac": round(last["weights/small_frac"], 5)},
    })
    # `data` names the dataset as results must show it: a proxy run says PROXY here and in every title.
    write_json("metrics/run.json", {"data": data.describe(params.dataset), "seconds": round(state["seconds"], 2),
                                    "seconds_per_epoch": round(state["seconds"] / len(history), 3),
                                    "device": state["device"],
                                    "precision": state["precision"], "torch": state["torch"]})
    names = np.array(exp.classes)
    write_text("plots/confusion.csv", "actual,predicted\n" + "".join(
        f"{a},{p}\n" for a, p in zip(names[actual], names[predicted])))
    title = f"{data.describe(params.dataset)}\n{params.variant}: test acc {result.acc:.2f}%"
    plots.confusion_png(plots.confusion_matrix(actual, predicted, len(names)), exp.classes, title,
                        Path("plots/confusion.png"))
    wrong = np.flatnonzero(actual != predicted)[:25]
    plots.misclassified_png(exp.test.images[torch.from_numpy(wrong).to(exp.device)].cpu().numpy(), actual[wrong],
                            predicted[wrong], result.confidence.numpy()[wrong], exp.classes, title,
                            Path("plots/misclassified.png"))
    print(f"test acc {result.acc:.2f}% (best {best['test/acc']:.2f}% at epoch {best['epoch']}), "
          f"loss {result.loss:.4f}; wrote metrics/eval.json, metrics/run.json, plots/")


if __name__ == "__main__":
    run_stage(main)
