"""Each packed run's epoch records, as loop.fit would have written them alone, and its failure
(a run that diverges stops alone; the others train on).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from normlab.errors import DivergedError
from normlab.recipe import Recipe
from normlab.train.evaluation import Evaluation
from normlab.train.loop import epoch_record


@dataclass(frozen=True)
class Epoch:
    """What an epoch's records share."""

    epoch: int
    steps: int
    recipe: Recipe
    l1: list[float]
    l2: list[float]
    lr: float


def epoch_entries(
    models: Sequence[nn.Module],
    at: Epoch,
    epoch_stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    results: Sequence[Evaluation],
) -> list[dict]:
    """Per run its epoch record (loop.epoch_record on its unpacked model), or
    {"diverged": message} where loop.fit would have stopped with that error."""
    step_loss, step_total, hits = epoch_stats
    totals, losses = step_total.cpu(), step_loss.mean(0).tolist()
    acc = (100.0 * hits / (at.steps * at.recipe.batch_size)).tolist()
    entries = []
    for k, model in enumerate(models):
        bad = (~torch.isfinite(totals[:, k])).nonzero()
        if len(bad):  # the optimised loss, as loop.train_epoch checks it
            s = int(bad[0])
            entries.append(
                {"diverged": str(DivergedError.at(at.epoch, s + 1, totals[s, k].item()))}
            )
        elif not math.isfinite(results[k].loss):
            entries.append({"diverged": str(DivergedError.at(at.epoch, at.steps, results[k].loss))})
        else:
            entries.append(
                epoch_record(
                    model,
                    epoch=at.epoch,
                    l1=at.l1[k],
                    l2=at.l2[k],
                    recipe=at.recipe,
                    train_stats={"train/loss": losses[k], "train/acc": acc[k]},
                    test=results[k],
                    lr=at.lr,
                )
            )
    return entries


def note(
    entries: Sequence[dict],
    histories: list[list[dict]],
    failed: dict[int, DivergedError],
    log: Callable[[int, dict], None] | None,
) -> None:
    """File one epoch's entries: records into the histories (and `log`), failures once."""
    for k, entry in enumerate(entries):
        if "diverged" in entry:
            failed.setdefault(k, DivergedError(entry["diverged"]))
        else:
            histories[k].append(entry)
            if log is not None:
                log(k, entry)


def replay(
    saved: list[list[dict]], runs: int, log: Callable[[int, dict], None] | None
) -> tuple[list[list[dict]], dict[int, DivergedError]]:
    """The histories and failures of a resumed pack's earlier epochs."""
    histories: list[list[dict]] = [[] for _ in range(runs)]
    failed: dict[int, DivergedError] = {}
    for entries in saved:
        note(entries, histories, failed, log)
    return histories, failed


def print_epoch(
    epoch: int, epochs: int, results: Sequence[Evaluation], failed: dict, seconds: float
) -> None:
    acc = ["diverged" if k in failed else f"{e.acc:.2f}" for k, e in enumerate(results)]
    tqdm.write(f"epoch {epoch:3d}/{epochs}  test acc {' '.join(acc)}  {seconds:6.1f}s")
