"""Every figure of the report, drawn from run records alone and byte-identical on a rebuild.

What a reader comes for are differences of 0.05–0.3 points between variants that all learned,
so accuracy is drawn as test *error* % on a log scale, fitted to the runs that learned; a run
that did not learn (at chance, or diverged) is never averaged into a line or a band: it is
marked apart (its own panel, or named under the figure). Bands are the min–max range of the
seeds that learned, so no band can cross 0 or 100 %.

Determinism: figures are built on `matplotlib.figure.Figure` (no pyplot, no global state),
under a fixed rc context, and saved without the PNG's 'Software' metadata; no random jitter.
"""

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from normlab import config, data
from normlab.analysis import records
from normlab.analysis.verdicts import Run, chance
from normlab.features import PERCENTILES
from normlab.io import atomic_path

STYLE = {"font.size": 9, "axes.titlesize": 10, "svg.hashsalt": "normlab", "path.simplify": False}
SHIPPED = Path("data")  # datasets whose files the repo ships (MNIST): data/<dataset>/
BANDS = (("test/acc", "test accuracy %"), ("test/loss", "test loss"))
GRID = 25  # misclassified images per variant (5 × 5), as the evaluate stage draws them


@contextmanager
def style() -> Iterator[None]:
    """matplotlib's defaults plus STYLE, whatever a user's matplotlibrc says: same bytes on
    every machine with the pinned matplotlib."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def save(fig: Figure, path: Path) -> None:
    """PNG without 'Software' metadata (matplotlib's version): same inputs, same bytes."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})


def colors(order: Sequence[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10" if len(order) <= 10 else "tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(order)}


def learned(runs: Sequence[Run]) -> list[Run]:
    return [r for r in runs if not r.failure]


def drawn(runs: Sequence[Run]) -> list[Run]:
    """What curves and bands show: the runs that learned; every run when none did (a quick
    check of the machinery), so a figure is never blank."""
    return learned(runs) or list(runs)


def failed_note(runs: Sequence[Run]) -> str:
    """'did not learn, not drawn: none s1 stayed at chance (11.35 %)' or ''."""
    bad = [f"{r.label} {r.failure} ({r.acc:.2f} %)" for r in runs if r.failure]
    return "did not learn, not drawn: " + "; ".join(bad) if bad else ""


def _footnote(fig: Figure, runs: Sequence[Run]) -> None:
    """Under a figure that draws `drawn(runs)`: which runs it leaves out, or that none learned."""
    note = failed_note(runs) if learned(runs) else "no run learned: every run is drawn"
    if note:
        fig.text(0.01, -0.01, note, fontsize=8, color="firebrick", va="top", wrap=True)


def log_ticks(low: float, high: float) -> list[float]:
    """Round ticks for a log axis over [low, high]: 1-2-5 per decade, finer when the range is
    under a decade (differences of 0.05 points live there), at least 3 when possible."""
    if not (0 < low < high and math.isfinite(high)):
        return []
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for subs in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8), tuple(np.arange(1, 10, 0.5))):
        ticks = [round(k * 10.0**d, 12) for d in decades for k in subs]
        ticks = [t for t in ticks if low <= t <= high]
        if len(ticks) >= 3:
            return ticks
    if len(ticks) >= 2:
        return ticks
    return [float(t) for t in MaxNLocator(4).tick_values(low, high) if low <= t <= high]


def _log_axis(ax, axis: str = "y") -> None:
    """Log scale with plain-number ticks (0.6, 0.8, 1, 2 …) fitted to what is drawn: call it
    after the data are on the axes."""
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target, limits = (ax.yaxis, ax.get_ylim()) if axis == "y" else (ax.xaxis, ax.get_xlim())
    ticks = log_ticks(*limits)
    target.set_major_locator(FixedLocator(ticks) if ticks else LogLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _epoch_axis(ax, frame: pd.DataFrame) -> None:
    """Whole epochs only, with half an epoch of room either side (one epoch is one point)."""
    epochs = sorted(frame["epoch"].unique()) if len(frame) else []
    if epochs:
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
    few = 0 < len(epochs) <= 12
    ax.xaxis.set_major_locator(FixedLocator(epochs) if few else MaxNLocator(integer=True))


def history_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run and epoch: variant, seed, epoch and every history key."""
    rows = [{"variant": r.variant, "seed": r.seed, **h} for r in runs for h in r.history]
    return pd.DataFrame(rows)


CURVES = (
    ("train/loss", "train loss", False),
    ("test/loss", "test loss", False),
    ("train/acc", "train error %", True),
    ("test/acc", "test error %", True),
)


def curves(runs: Sequence[Run], order: Sequence[str], title: str, path: Path) -> Figure:
    """Loss and error per epoch, train and test, log scale: mean of the seeds that learned,
    band = their min–max (every run, dashed, when none learned)."""
    frame = history_frame(drawn(runs))
    palette = colors(order)
    nobody = not learned(runs)
    line = {"lw": 1.4, "marker": "o", "markersize": 3, "ls": "--" if nobody else "-"}
    with style():
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
            _log_axis(ax)
            ax.set_title(f"{label} (log scale)")
            _epoch_axis(ax, frame)
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
        _footnote(fig, runs)
        save(fig, path)
    return fig


def accuracy(runs: Sequence[Run], order: Sequence[str], title: str, path: Path) -> Figure:
    """Final test error % per variant: every seed a dot, the mean a bar; runs that did not
    learn in a panel of their own (accuracy %, with chance marked)."""
    palette = colors(order)
    failed = [r for r in runs if r.failure]
    y = {v: i for i, v in enumerate(reversed(list(order)))}
    with style():
        height = max(3.2, 0.45 * len(order) + 1.8)
        fig = Figure(figsize=(10 if failed else 8, height), layout="constrained")
        ratios = {"width_ratios": (3, 1)} if failed else {}
        axes = fig.subplots(1, 2 if failed else 1, sharey=True, squeeze=False, gridspec_kw=ratios)
        ax = axes[0, 0]
        for variant in order:
            good = sorted((r for r in learned(runs) if r.variant == variant), key=lambda r: r.seed)
            if not good:
                continue
            errors = [100 - r.acc for r in good]
            spread = np.linspace(-0.15, 0.15, len(errors)) if len(errors) > 1 else [0.0]
            ax.scatter(
                errors, y[variant] + np.asarray(spread), color=palette[variant], s=28, zorder=3
            )
            mean = float(np.mean(errors))
            ax.plot([mean, mean], [y[variant] - 0.3, y[variant] + 0.3], color="black", lw=1.5)
        _log_axis(ax, "x")
        ax.set_yticks(list(y.values()), list(y.keys()))
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.set_xlabel("final test error % (log scale; lower is better)")
        ax.set_title("runs that learned — dots: seeds, bar: their mean")
        ax.grid(True, axis="x", which="major", alpha=0.3)
        if failed:
            _failed_panel(axes[0, 1], failed, y)
        fig.suptitle(title)
        save(fig, path)
    return fig


def _failed_panel(ax, failed: Sequence[Run], y: dict[str, int]) -> None:
    """Runs that did not learn: their final accuracy, beside the chance level."""
    for variant in dict.fromkeys(r.variant for r in failed):
        mine = [r for r in failed if r.variant == variant]
        ax.scatter(
            [r.acc for r in mine],
            [y[variant]] * len(mine),
            marker="x",
            color="firebrick",
            s=40,
            zorder=3,
        )
        label = ", ".join(f"s{r.seed} {r.acc:.2f}" for r in mine) + " %"
        ax.annotate(
            label,
            (mine[0].acc, y[variant]),
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


def batch_norm_label(run: Run) -> str:
    p = run.params
    return config.variant_name(p["norm"], p["groups"], p["l1"], p["l2"])


def batch_sizes(runs: Sequence[Run]) -> list[int]:
    return sorted({int(r.params["recipe"]["batch_size"]) for r in runs})


def batch(runs: Sequence[Run], title: str, path: Path) -> Figure:
    """Final test error % vs batch size per norm: mean of the seeds that learned, bars min–max."""
    good = drawn(runs)
    labels = list(dict.fromkeys(batch_norm_label(r) for r in runs))
    palette = colors(labels)
    with style():
        fig = Figure(figsize=(7.5, 4.8))
        ax = fig.subplots()
        for label in labels:
            rows = [
                (int(r.params["recipe"]["batch_size"]), 100 - r.acc)
                for r in good
                if batch_norm_label(r) == label
            ]
            if not rows:
                continue
            frame = pd.DataFrame(rows, columns=["bs", "err"]).groupby("bs")["err"]
            stats = frame.agg(["mean", "min", "max"])
            ax.errorbar(
                stats.index,
                stats["mean"],
                yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                marker="o",
                capsize=3,
                color=palette[label],
                label=label,
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(batch_sizes(runs), [str(b) for b in batch_sizes(runs)])
        ax.xaxis.set_minor_formatter(NullFormatter())
        _log_axis(ax)
        ax.set(xlabel="batch size", ylabel="final test error % (log; bars: min–max of seeds)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
        ax.set_title(title)
        _footnote(fig, runs)
        save(fig, path)
    return fig


def has_features(runs: Sequence[Run]) -> bool:
    return any("features/pre_norm/p01" in h for r in runs for h in r.history)


def features(runs: Sequence[Run], order: Sequence[str], title: str, path: Path) -> Figure:
    """Wu & He's Fig. 3 per variant: percentiles of the last block's norm input (top) and
    output (bottom) on a fixed test batch, per epoch, mean over the seeds that learned."""
    frame = history_frame(drawn(runs))
    shown = [v for v in order if len(frame) and (frame["variant"] == v).any()]
    with style():
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
                _epoch_axis(ax, frame)
                ax.set_xlabel("epoch" if row else "")
        axes[0, 0].legend(fontsize=7, title="percentile", title_fontsize=7)
        fig.suptitle(title)
        _footnote(fig, runs)
        save(fig, path)
    return fig


def confusion_counts(runs: Sequence[Run]) -> np.ndarray:
    """Counts summed over the seeds that learned (over all when none did)."""
    chosen = learned(runs) or list(runs)
    return np.sum([np.asarray(r.confusion) for r in chosen], axis=0)


def confusion(runs: Sequence[Run], order: Sequence[str], title: str, path: Path) -> Figure:
    """Errors only (diagonal hidden), summed over seeds, one panel per variant."""
    shown = [v for v in order if any(r.variant == v for r in runs)]
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    with style():
        fig = Figure(figsize=(4.6 * cols, 4.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, variant in zip(axes.flat, shown, strict=False):
            _confusion_panel(ax, variant, [r for r in runs if r.variant == variant])
        fig.suptitle(title)
        save(fig, path)
    return fig


def _confusion_panel(ax, variant: str, runs: Sequence[Run]) -> None:
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
    used = len(learned(runs)) or len(runs)
    ax.set(
        xlabel="predicted",
        ylabel="actual",
        title=f"{variant}: {int(errors.sum())} errors in {used} runs",
    )


def grid_images(run: Run, shipped: Path = SHIPPED) -> np.ndarray | None:
    """The run's misclassified test images (N×C×H×W uint8): from the record's sidecar when it
    has one, else by index from the test images the repo ships (data/mnist/); None when
    neither is there."""
    if run.source is not None and records.sidecar(run.source).exists():
        return np.load(records.sidecar(run.source))
    test_images = shipped / run.dataset / "t10k-images-idx3-ubyte.gz"
    if test_images.exists():
        pixels = data.read_idx(test_images, 3)
        return pixels[np.asarray(run.misclassified["index"], dtype=int)][:, None]
    return None


LABEL_ROOM = 12  # pixels under each image for its label


def _mosaic(images: np.ndarray, side: int) -> np.ndarray:
    """N×C×H×W images → one canvas, `side` per row, with white room under each for a label."""
    n, c, h, w = images.shape
    canvas = np.full((side * (h + LABEL_ROOM), side * (w + 4), c), 255, dtype=np.uint8)
    for k in range(min(n, side * side)):
        r, q = divmod(k, side)
        top, left = r * (h + LABEL_ROOM), q * (w + 4)
        canvas[top : top + h, left : left + w] = images[k].transpose(1, 2, 0)
    return canvas


def misclassified(
    runs: Sequence[Run],
    order: Sequence[str],
    title: str,
    path: Path,
    images: Callable[[Run], np.ndarray | None] = grid_images,
) -> Figure:
    """5 × 5 misclassified test images of one seed per variant (the lowest that learned),
    each labelled predicted / actual and the confidence."""
    chosen = {}
    for variant in order:
        mine = sorted((r for r in runs if r.variant == variant), key=lambda r: r.seed)
        if mine:
            chosen[variant] = (learned(mine) or mine)[0]
    cols = min(4, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    with style():
        fig = Figure(figsize=(6 * cols, 6.4 * rows))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, run in zip(axes.flat, chosen.values(), strict=False):
            _grid_panel(ax, run, images(run))
        fig.suptitle(f"{title}\nlabels: predicted / actual (confidence)", fontsize=13)
        save(fig, path)
    return fig


def _grid_panel(ax, run: Run, pixels: np.ndarray | None) -> None:
    ax.set_title(f"{run.variant} (seed {run.seed})", fontsize=12, fontweight="bold")
    if pixels is None or not len(pixels):
        ax.text(
            0.5,
            0.5,
            "no images: no misclassified test images stored with this record",
            ha="center",
            va="center",
            wrap=True,
            transform=ax.transAxes,
        )
        return
    side = math.ceil(math.sqrt(min(len(pixels), GRID)))
    canvas = _mosaic(pixels[:GRID], side)
    ax.imshow(
        canvas[..., 0] if canvas.shape[2] == 1 else canvas,
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


def bands(runs: Sequence[Run], order: Sequence[str]) -> pd.DataFrame:
    """Per variant, quantity and epoch: mean and std (ddof 1) over the seeds that learned, and
    the band mean ± std held inside [0, 100] % (accuracy) or [0, ∞) (loss): DVC's plot data."""
    frame = history_frame(drawn(runs))
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
