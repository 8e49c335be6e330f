"""The report's confusion matrices: errors only (the diagonal hidden), summed over the seeds
that learned, one panel per variant."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from normlab.analysis.claims.verdicts import Outcome, usable_runs
from normlab.analysis.report.figures import canvas


def confusion_counts(runs: Sequence[Outcome]) -> np.ndarray:
    """Counts summed over the seeds that learned (over all when none did)."""
    return np.sum([np.asarray(r.confusion) for r in usable_runs(runs)], axis=0)


def confusion(runs: Sequence[Outcome], order: Sequence[str], title: str, path: Path) -> Figure:
    """Errors only (diagonal hidden), summed over seeds, one panel per variant."""
    shown = [v for v in order if any(r.variant == v for r in runs)]
    with canvas.style():
        fig, axes = canvas.panel_grid(len(shown), 4.6, 4.4)
        for ax, variant in zip(axes, shown, strict=False):
            _confusion_panel(ax, variant, [r for r in runs if r.variant == variant])
        fig.suptitle(title)
        canvas.save(fig, path)
    return fig


def _confusion_panel(ax, variant: str, runs: Sequence[Outcome]) -> None:
    if not usable_runs(runs):  # every run diverged: no predictions to count
        why = "; ".join(f"s{r.seed} {r.final_text()}" for r in runs)
        ax.text(
            0.5, 0.5, f"{variant}: no predictions\n({why})", ha="center", va="center", wrap=True
        )
        return
    counts = confusion_counts(runs)
    errors = np.where(np.eye(len(counts), dtype=bool), 0, counts)
    ax.axis("on")
    ax.imshow(
        np.ma.masked_where(np.eye(len(counts), dtype=bool), errors),
        cmap="Reds",
        vmin=0,
        vmax=max(1, errors.max()),
    )
    for (i, j), value in np.ndenumerate(errors):
        if i != j and value:
            ax.text(j, i, str(value), ha="center", va="center", fontsize=6)
    names = [c[:9] for c in runs[0].classes]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    used = len(usable_runs(runs))
    ax.set(
        xlabel="predicted",
        ylabel="actual",
        title=f"{variant}: {int(errors.sum())} errors in {used} runs",
    )
