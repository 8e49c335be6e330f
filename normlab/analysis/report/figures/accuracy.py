"""The report's final-accuracy figure: test error per variant, every seed a dot (against batch
size: normlab.analysis.report.figures.batchsize). Runs that did not learn are drawn apart, never
averaged in."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from normlab.analysis.claims.verdicts import Outcome, chance, learned_runs
from normlab.analysis.report.figures import canvas


def accuracy(runs: Sequence[Outcome], order: Sequence[str], title: str, path: Path) -> Figure:
    """Final test error % per variant: every seed a dot, the mean a bar; runs that did not
    learn in a panel of their own (accuracy %, with chance marked)."""
    palette = canvas.colors(order)
    failed = [r for r in runs if r.failure]
    y = {v: i for i, v in enumerate(reversed(list(order)))}
    with canvas.style():
        height = max(3.2, 0.45 * len(order) + 1.8)
        fig = Figure(figsize=(10 if failed else 8, height), layout="constrained")
        ratios = {"width_ratios": (3, 1)} if failed else {}
        axes = fig.subplots(1, 2 if failed else 1, sharey=True, squeeze=False, gridspec_kw=ratios)
        ax = axes[0, 0]
        for variant in order:
            good = sorted(
                (r for r in learned_runs(runs) if r.variant == variant), key=lambda r: r.seed
            )
            if not good:
                continue
            errors = [100 - r.acc for r in good]
            spread = np.linspace(-0.15, 0.15, len(errors)) if len(errors) > 1 else [0.0]
            ax.scatter(
                errors, y[variant] + np.asarray(spread), color=palette[variant], s=28, zorder=3
            )
            mean = float(np.mean(errors))
            ax.plot([mean, mean], [y[variant] - 0.3, y[variant] + 0.3], color="black", lw=1.5)
        canvas.log_axis(ax, "x")
        ax.set_yticks(list(y.values()), list(y.keys()))
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.set_xlabel("final test error % (log scale; lower is better)")
        ax.set_title("runs that learned — dots: seeds, bar: their mean")
        ax.grid(True, axis="x", which="major", alpha=0.3)
        if failed:
            _failed_panel(axes[0, 1], failed, y)
        fig.suptitle(title)
        canvas.save(fig, path)
    return fig


def _failed_panel(ax, failed: Sequence[Outcome], y: dict[str, int]) -> None:
    """Runs that did not learn: their final accuracy, beside the chance level."""
    for variant in dict.fromkeys(r.variant for r in failed):
        mine = [r for r in failed if r.variant == variant]
        drawn = [r for r in mine if r.measured]  # a diverged run has no accuracy: named only
        ax.scatter(
            [r.acc for r in drawn],
            [y[variant]] * len(drawn),
            marker="x",
            color="firebrick",
            s=40,
            zorder=3,
        )
        if len(drawn) == len(mine):
            label = ", ".join(f"s{r.seed} {r.acc:.2f}" for r in mine) + " %"
        else:
            label = ", ".join(f"s{r.seed} {r.final_text()}" for r in mine)
        ax.annotate(
            label,
            (drawn[0].acc if drawn else 0.0, y[variant]),
            textcoords="offset points",
            xytext=(6, 5),
            fontsize=7,
            color="firebrick",
        )
    level = chance(len(failed[0].classes))
    ax.axvline(level, color="grey", ls="--", lw=1)
    ax.set_xlim(0, 100)
    ax.set_xlabel("final test accuracy %")
    ax.set_title(f"did not learn (dashed: chance, {level:g} %)", color="firebrick")
