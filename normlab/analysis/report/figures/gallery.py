"""The figures of one study in the report: which it gets, their files and captions, and its
seed bands for DVC. Each kind is drawn by its own module (curves, accuracy, confusion,
misclassified); what they share is normlab.analysis.report.figures.canvas."""

from pathlib import Path

from normlab.analysis.report import tables
from normlab.analysis.report.figures import (
    accuracy,
    batchsize,
    confusion,
    curves,
    misclassified,
)
from normlab.analysis.report.views import StudyView
from normlab.io import atomic_path

BANDS_DIR = "bands"  # out/bands/<study>.csv, declared as a plot folder in dvc.yaml


def study_figures(study: StudyView, out: Path) -> list[tuple[str, str]]:
    """Draw the study's figures into `out`; (file, caption) for each."""
    runs, order = list(study.runs), [v for v in study.variants if study.of(v)]
    head = f"{tables.long_title(study.dataset)} — study {study.name}"
    made = [
        (f"{study.name}-curves.png", "loss and error per epoch, train and test (log scales)"),
        (f"{study.name}-accuracy.png", "final test error per variant, every seed"),
    ]
    curves.curves(runs, order, head, out / made[0][0])
    accuracy.accuracy(runs, order, head, out / made[1][0])
    if len(batchsize.batch_sizes(runs)) > 1:
        made.append(
            (f"{study.name}-batch-size.png", "final test error vs batch size, per norm: every seed")
        )
        batchsize.figure(runs, f"{head}: error vs batch size", out / made[-1][0])
    if curves.has_features(runs):
        made.append(
            (
                f"{study.name}-features.png",
                "last block's feature percentiles per epoch: "
                "its norm's input and output (Wu & He, Fig. 3)",
            )
        )
        curves.features(runs, order, f"{head}: feature percentiles", out / made[-1][0])
    made.append(
        (
            f"{study.name}-confusion.png",
            "confusion matrices, errors only, summed over the seeds that learned",
        )
    )
    confusion.confusion(runs, order, f"{head}: errors", out / made[-1][0])
    made.append(
        (f"{study.name}-misclassified.png", "misclassified test images, one seed per variant")
    )
    misclassified.misclassified(runs, order, f"{head}: misclassified", out / made[-1][0])
    return made


def write_bands(study: StudyView, out: Path) -> Path:
    path = out / BANDS_DIR / f"{study.name}.csv"
    order = [v for v in study.variants if study.of(v)]
    with atomic_path(path) as tmp:
        curves.bands(study.runs, order).to_csv(tmp, index=False, lineterminator="\n")
    return path
