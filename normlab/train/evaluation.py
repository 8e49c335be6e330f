"""Scoring a model on a whole split: loss, accuracy, predictions, in large batches.

Used after every epoch by loop.fit and once by the evaluate stage, so both score alike
(the recipe's test-time flip included).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from normlab.data.augment import Batcher
from normlab.data.readers import Split
from normlab.train.device import Autocast


@dataclass(frozen=True)
class Evaluation:
    loss: float
    acc: float  # percent
    predictions: torch.Tensor  # on the CPU
    confidence: torch.Tensor  # softmax probability of the predicted class


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    split: Split,
    batcher: Batcher,
    batch_size: int,
    autocast: Autocast,
    tta: bool = False,
) -> Evaluation:
    """Loss and accuracy over a whole split, in large batches, one host read at the end.

    With `tta` each image is scored by the mean of the logits for it and for its mirror image
    (the flip the recipe trained with), which averages out some of a small net's left/right noise.
    """
    model.eval()
    losses, preds, confs = [], [], []
    for start in range(0, len(split.labels), batch_size):
        x = batcher(split.images[start : start + batch_size], train=False)
        y = split.labels[start : start + batch_size]
        with autocast():
            logits = model(x).float()
            if tta:
                logits = (logits + model(x.flip(-1)).float()) / 2
        losses.append(F.cross_entropy(logits, y, reduction="sum"))
        conf, pred = logits.softmax(1).max(1)
        preds.append(pred)
        confs.append(conf)
    pred = torch.cat(preds)
    loss = torch.stack(losses).sum().item() / len(split.labels)
    acc = 100.0 * (pred == split.labels).float().mean().item()
    return Evaluation(loss, acc, pred.cpu(), torch.cat(confs).float().cpu())
