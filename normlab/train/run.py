"""One run from validated params, done the same way by the train and evaluate stages and by a
study's worker (normlab.analysis.study.worker): train it, then score it into eval.json's
numbers."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from normlab.config import Params
from normlab.nets.build import count_params
from normlab.train.checkpoint import Checkpoint
from normlab.train.device import compile_model
from normlab.train.evaluation import Evaluation, evaluate
from normlab.train.features import PROBE_IMAGES, feature_probe
from normlab.train.loop import Fitted, fit
from normlab.train.metrics import eval_metrics
from normlab.train.prepare import Prepared


def train(
    params: Params,
    prep: Prepared,
    checkpoint: Checkpoint,
    log: Callable[[dict], None] | None = None,
) -> Fitted:
    """fit with the recipe's values, the feature probe on the first test images, and
    torch.compile when `engine.compile` asks for it; prep.model holds the trained weights."""
    model = compile_model(prep.model, prep.device) if params.engine.compile else prep.model
    probe = feature_probe(prep.batcher(prep.test.images[:PROBE_IMAGES], train=False))
    return fit(
        model,
        train=prep.train,
        test=prep.test,
        batcher=prep.batcher,
        recipe=params.recipe,
        l1=params.l1,
        l2=params.l2,
        seed=params.seed,
        eval_batch_size=params.engine.eval_batch_size,
        autocast=prep.autocast,
        checkpoint=checkpoint,
        log=log,
        probe=probe,
        val=prep.val,
    )


@dataclass(frozen=True)
class Scored:
    evaluation: Evaluation
    actual: np.ndarray  # test labels
    predicted: np.ndarray
    metrics: dict  # metrics/eval.json


def score(params: Params, prep: Prepared, history: list[dict]) -> Scored:
    """The trained prep.model on the whole test set (with the recipe's test-time flip), and
    eval.json's numbers from that evaluation and the training history."""
    result = evaluate(
        prep.model,
        prep.test,
        prep.batcher,
        params.engine.eval_batch_size,
        prep.autocast,
        params.recipe.tta,
    )
    actual, predicted = prep.test.labels.cpu().numpy(), result.predictions.numpy()
    metrics = eval_metrics(
        history=history,
        acc=result.acc,
        loss=result.loss,
        actual=actual,
        predicted=predicted,
        classes=prep.classes,
        param_count=count_params(prep.model),
    )
    return Scored(result, actual, predicted, metrics)
