"""The report's grids of misclassified test images, one seed per variant, each image labelled
predicted / actual (confidence). The images come from the record's sidecar, else by index from
the test set the repo ships (data/<dataset>/, MNIST), so a clone redraws the same grid."""

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from normlab.analysis.claims.verdicts import Outcome, usable_runs
from normlab.analysis.report.figures import canvas
from normlab.analysis.study import store
from normlab.data import readers
from normlab.data.fetch import SHIPPED
from normlab.train.metrics import (
    GRID,  # misclassified images per variant (5 × 5), as evaluate draws
)

LABEL_ROOM = 12  # pixels under each image for its label


def grid_images(run: Outcome, shipped: Path = SHIPPED) -> np.ndarray | None:
    """The run's misclassified test images (N×C×H×W uint8): from the record's sidecar when it
    has one, else by index from the test images the repo ships (data/mnist/); None when
    neither is there."""
    if run.source is not None and store.sidecar(run.source).exists():
        return np.load(store.sidecar(run.source))
    test_images = shipped / run.dataset / "t10k-images-idx3-ubyte.gz"
    if test_images.exists():
        pixels = readers.read_idx(test_images, 3)
        return pixels[np.asarray(run.misclassified["index"], dtype=int)][:, None]
    return None


def _mosaic(images: np.ndarray, side: int) -> np.ndarray:
    """N×C×H×W images → one sheet, `side` per row, with white room under each for a label."""
    n, c, h, w = images.shape
    sheet = np.full((side * (h + LABEL_ROOM), side * (w + 4), c), 255, dtype=np.uint8)
    for k in range(min(n, side * side)):
        r, q = divmod(k, side)
        top, left = r * (h + LABEL_ROOM), q * (w + 4)
        sheet[top : top + h, left : left + w] = images[k].transpose(1, 2, 0)
    return sheet


def misclassified(
    runs: Sequence[Outcome],
    order: Sequence[str],
    title: str,
    path: Path,
    images: Callable[[Outcome], np.ndarray | None] = grid_images,
) -> Figure:
    """5 × 5 misclassified test images of one seed per variant (the lowest that learned),
    each labelled predicted / actual and the confidence."""
    chosen = {}
    for variant in order:
        mine = sorted((r for r in runs if r.variant == variant), key=lambda r: r.seed)
        if mine:
            chosen[variant] = (usable_runs(mine) or mine)[0]  # all diverged: say so
    with canvas.style():
        fig, axes = canvas.panel_grid(len(chosen), 6, 6.4)
        for ax, run in zip(axes, chosen.values(), strict=False):
            _grid_panel(ax, run, images(run))
        fig.suptitle(f"{title}\nlabels: predicted / actual (confidence)", fontsize=13)
        canvas.save(fig, path)
    return fig


def _grid_panel(ax, run: Outcome, pixels: np.ndarray | None) -> None:
    ax.set_title(f"{run.variant} (seed {run.seed})", fontsize=12, fontweight="bold")
    if pixels is None or not len(pixels):
        stored = "no misclassified test images stored with this record"
        why = stored if run.measured else f"the run {run.final_text()}"
        ax.text(
            0.5,
            0.5,
            f"no images: {why}",
            ha="center",
            va="center",
            wrap=True,
            transform=ax.transAxes,
        )
        return
    side = math.ceil(math.sqrt(min(len(pixels), GRID)))
    sheet = _mosaic(pixels[:GRID], side)
    ax.imshow(
        sheet[..., 0] if sheet.shape[2] == 1 else sheet,
        cmap="gray",
        vmin=0,
        vmax=255,
        interpolation="nearest",
    )
    h, w = pixels.shape[2], pixels.shape[3]
    wrong = run.misclassified
    for k in range(min(len(pixels), GRID)):
        r, q = divmod(k, side)
        predicted = run.classes[wrong["predicted"][k]][:10]
        actual = run.classes[wrong["actual"][k]][:10]
        ax.text(
            q * (w + 4) + w / 2,
            r * (h + LABEL_ROOM) + h + 0.5,
            f"{predicted} / {actual}\n({wrong['confidence'][k]:.2f})",
            ha="center",
            va="top",
            fontsize=6.5,
            color="firebrick",
            linespacing=1.0,
        )
