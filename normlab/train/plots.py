"""Figures a person looks at: confusion heatmap and the misclassified-image grid (PNG)."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from normlab.io import atomic_path


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """Counts[i, j] = images of class i predicted as j."""
    return np.bincount(actual * n + predicted, minlength=n * n).reshape(n, n)


def confusion_png(counts: np.ndarray, classes: tuple[str, ...], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 6))
    sns.heatmap(
        counts,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        ax=ax,
        xticklabels=classes,
        yticklabels=classes,
        annot_kws={"size": 7},
    )
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    _save(fig, path)


def misclassified_png(
    images: np.ndarray,
    actual: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    classes: tuple[str, ...],
    title: str,
    path: Path,
) -> None:
    """Grid of misclassified images (N×C×H×W uint8), each titled predicted / actual / confidence."""
    n = len(images)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, a, p, c in zip(axes.flat, images, actual, predicted, confidence, strict=False):
        pixels = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        ax.imshow(pixels, cmap="gray" if img.shape[0] == 1 else None)
        ax.set_title(f"pred {classes[p]}\ntrue {classes[a]}  {c:.0%}", fontsize=7)
    fig.suptitle(title if n else f"{title}: none misclassified", fontsize=9)
    _save(fig, path)
