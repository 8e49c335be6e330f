"""The report's per-epoch figures and data: loss and error curves, the feature percentiles of
the last norm, and the seed bands DVC draws (results/bands/<study>.csv).

Lines and bands are over the seeds that learned (every run, dashed, when none did): see
normlab.analysis.report.figures.canvas for why and how every figure is drawn.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from normlab.analysis.claims.verdicts import Outcome, learned_runs, usable_runs
from normlab.analysis.report.figures import canvas
from normlab.train.features import PERCENTILES

BANDS = (("test/acc", "test accuracy %"), ("test/loss", "test loss"))

CURVES = (
    ("train/loss", "train loss", False),
    ("test/loss", "test loss", False),
    ("train/acc", "train error %", True),
    ("test/acc", "test error %", True),
)


def curves(runs: Sequence[Outcome], order: Sequence[str], title: str, path: Path) -> Figure:
    """Loss and error per epoch, train and test, log scale: mean of the seeds that learned,
    band = their min–max (every run, dashed, when none learned)."""
    frame = canvas.history_frame(usable_runs(runs))
    palette = canvas.colors(order)
    nobody = not learned_runs(runs)
    line = {"lw": 1.4, "marker": "o", "markersize": 3, "ls": "--" if nobody else "-"}
    with canvas.style():
        fig = Figure(figsize=(12, 8.5))
        axes = fig.subplots(2, 2, sharex=True)
        for ax, (key, label, error) in zip(axes.flat, CURVES, strict=True):
            for variant in order:
                part = frame[frame["variant"] == variant] if len(frame) else frame
                if not len(part):
                    continue
                values = (100 - part[key]) if error else part[key]
                stats = values.groupby(part["epoch"]).agg(["mean", "min", "max"])
                ax.plot(stats.index, stats["mean"], color=palette[variant], label=variant, **line)
                ax.fill_between(
                    stats.index,
                    stats["min"],
                    stats["max"],
                    color=palette[variant],
                    alpha=0.18,
                    lw=0,
                )
            canvas.log_axis(ax)
            ax.set_title(f"{label} (log scale)")
            canvas.epoch_axis(ax, frame)
            ax.grid(True, which="major", alpha=0.3)
        for ax in axes[1]:
            ax.set_xlabel("epoch")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.93),
            ncol=min(8, len(order)),
            frameon=False,
        )
        what = "no run learned: every run drawn, dashed" if nobody else "the seeds that learned"
        fig.suptitle(f"{title}\nline: mean of {what}; band: their min–max", y=1.02)
        canvas.footnote(fig, runs)
        canvas.save(fig, path)
    return fig


def has_features(runs: Sequence[Outcome]) -> bool:
    return any("features/pre_norm/p01" in h for r in runs for h in r.history)


def features(runs: Sequence[Outcome], order: Sequence[str], title: str, path: Path) -> Figure:
    """Wu & He's Fig. 3 per variant: percentiles of the last block's norm input (top) and
    output (bottom) on a fixed test batch, per epoch, mean over the seeds that learned."""
    frame = canvas.history_frame(usable_runs(runs))
    shown = [v for v in order if len(frame) and (frame["variant"] == v).any()]
    with canvas.style():
        fig = Figure(figsize=(3.2 * max(1, len(shown)), 6.5))
        axes = fig.subplots(2, max(1, len(shown)), sharex=True, squeeze=False)
        for col, variant in enumerate(shown):
            part = frame[frame["variant"] == variant]
            for row, where in enumerate(("pre_norm", "post_norm")):
                ax = axes[row, col]
                for p in PERCENTILES:
                    mean = part.groupby("epoch")[f"features/{where}/p{p:02d}"].mean()
                    ax.plot(
                        mean.index,
                        mean.values,
                        marker="o",
                        markersize=3,
                        label=f"{p}{'st' if p % 10 == 1 and p != 11 else 'th'}",
                    )
                kind = "input" if where == "pre_norm" else "output"
                ax.set_title(f"{variant}: norm {kind}", fontsize=9)
                canvas.epoch_axis(ax, frame)
                ax.set_xlabel("epoch" if row else "")
        axes[0, 0].legend(fontsize=7, title="percentile", title_fontsize=7)
        fig.suptitle(title)
        canvas.footnote(fig, runs)
        canvas.save(fig, path)
    return fig


def bands(runs: Sequence[Outcome], order: Sequence[str]) -> pd.DataFrame:
    """Per variant, quantity and epoch: mean and std (ddof 1) over the seeds that learned, and
    the band mean ± std held inside [0, 100] % (accuracy) or [0, ∞) (loss): DVC's plot data."""
    frame = canvas.history_frame(usable_runs(runs))
    rows = []
    for variant in order:
        part = frame[frame["variant"] == variant] if len(frame) else frame
        for key, quantity in BANDS:
            if not len(part):
                continue
            stats = part.groupby("epoch")[key].agg(["mean", "std", "count"]).fillna({"std": 0.0})
            top = 100.0 if key.endswith("acc") else math.inf
            for epoch, s in stats.iterrows():
                rows.append(
                    {
                        "variant": variant,
                        "quantity": quantity,
                        "epoch": int(epoch),
                        "mean": round(s["mean"], 6),
                        "std": round(s["std"], 6),
                        "low": round(max(0.0, s["mean"] - s["std"]), 6),
                        "high": round(min(top, s["mean"] + s["std"]), 6),
                        "seeds": int(s["count"]),
                    }
                )
    return pd.DataFrame(
        rows, columns=["variant", "quantity", "epoch", "mean", "std", "low", "high", "seeds"]
    )
