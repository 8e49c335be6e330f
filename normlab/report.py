"""results/ from finished study experiments, without retraining anything.

Every output a report needs (metrics/*.json, dvclive/plots/**.tsv, plots/confusion.csv,
plots/misclassified.png, model/params.json) is a `cache: false` output, so DVC commits it into
the experiment's own git commit (refs/exps/...). `collect` reads them with `git show`;
`build` turns the tidy records into tables, figures and verdicts. `build` takes plain records,
so it can be tested (and reused) without git or DVC.

Verdicts are computed, never written by hand: for each pair of variants a user would compare,
the mean difference in final test accuracy with a 95 % confidence interval and a Welch t-test.

Usage: python -m normlab.report [the study options: --file --study --profile --epochs --set] [--out results]
"""

import argparse
import io
import math
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml
from scipy import stats

from normlab import config, data, study
from normlab.errors import NormlabError, run_stage
from normlab.features import PERCENTILES
from normlab.io import atomic_path, write_text

CURVES = [("train", "loss"), ("test", "loss"), ("train", "acc"), ("test", "acc")]
# Feature percentiles of the last block, logged by the train stage (normlab.features):
# split = where (pre_norm: the norm's input, post_norm: its output), metric = p01 … p99.
FEATURES = [(where, f"p{p:02d}") for where in ("pre_norm", "post_norm") for p in PERCENTILES]
ALPHA = 0.05


@dataclass
class StudyInfo:
    """What the plan asked for: the description, each variant's overrides, the seeds."""

    description: str
    variants: dict[str, str]  # variant → its overrides as text, in the study's order
    seeds: list[int]


@dataclass
class Records:
    """Tidy records of finished runs — everything `build` needs.

    runs: one row per run: study, variant, seed, acc (final-epoch test %), best_acc, loss, gap,
      sec_per_epoch, seconds, abs_sum, small_frac, device, precision, torch, host, command, time (unix),
      name, sha, and the run's resolved params as `p.<key>` columns (p.norm, p.recipe.epochs …).
    curves: study, variant, seed, epoch, split (train|test|pre_norm|post_norm), metric (loss|acc|p01…p99),
      value.
    confusion: (study, variant) → counts DataFrame (index actual, columns predicted), summed
      over seeds. grids: (study, variant) → misclassified-grid PNG bytes of the lowest seed.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame
    confusion: dict[tuple[str, str], pd.DataFrame]
    grids: dict[tuple[str, str], bytes]
    studies: dict[str, StudyInfo]
    command: str = "python -m normlab.report"
    notes: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    a: str
    b: str
    n_a: int
    n_b: int
    diff: float  # mean(a) − mean(b), points of test accuracy
    low: float
    high: float
    p: float

    @property
    def detected(self) -> bool:
        return self.p < ALPHA and not (self.low <= 0 <= self.high)

    def text(self) -> str:
        n = f"n = {self.n_a} vs {self.n_b}"
        if math.isnan(self.p):
            if self.diff == 0:
                return f"**{self.a}** vs **{self.b}**: no detectable difference (identical accuracies; {n})."
            return f"**{self.a}** vs **{self.b}**: cannot be tested ({n}, or no spread between seeds)."
        stats_text = (f"95 % CI {self.low:+.2f} to {self.high:+.2f} points; Welch t-test p = {self.p:.3g}; {n}")
        if self.detected:
            word = "higher" if self.diff > 0 else "lower"
            return f"**{self.a}** is {word} than **{self.b}** by {abs(self.diff):.2f} points ({stats_text})."
        return f"**{self.a}** vs **{self.b}**: no detectable difference ({self.diff:+.2f} points, {stats_text})."


def compare(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> Verdict:
    """Welch's t-test and the 95 % CI of mean(a) − mean(b); NaN where it cannot be computed."""
    diff = float(np.mean(a) - np.mean(b)) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return Verdict(name_a, name_b, len(a), len(b), diff, math.nan, math.nan, math.nan)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(1 - ALPHA)
    return Verdict(name_a, name_b, len(a), len(b), diff, float(ci.low), float(ci.high), float(result.pvalue))


def _param_columns(runs: pd.DataFrame) -> list[str]:
    """The params that define a variant: not the seed, and not where or how fast it ran
    (study.PLACE_AND_SPEED, the rule the study uses to decide that a run is already done)."""
    skip = ("seed", *study.PLACE_AND_SPEED)
    return [c for c in runs.columns if c.startswith("p.") and c.split(".")[1] not in skip]


def pairs(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The comparisons a user would make, found from the params (variant, reference):

    a variant that differs from a BatchNorm variant only in the norm (and groups) → vs it;
    a variant with l1/l2 that differs from an unpenalized one only in l1/l2 → vs it.
    """
    cols = _param_columns(runs)
    first = runs.drop_duplicates("variant").set_index("variant")[cols]
    found = []
    for a, pa in first.iterrows():
        for b, pb in first.iterrows():
            diff = {c for c in cols if pa[c] != pb[c]}
            if a == b or not diff:
                continue
            if diff <= {"p.norm", "p.groups"} and pb["p.norm"] == "bn":
                found.append((a, b))
            elif diff <= {"p.l1", "p.l2"} and pb["p.l1"] == 0 and pb["p.l2"] == 0:
                found.append((a, b))
    return found


def verdicts(runs: pd.DataFrame) -> list[Verdict]:
    """One verdict per pair, on final-epoch test accuracy."""
    acc = runs.groupby("variant")["acc"].apply(np.asarray)
    return [compare(acc[a], acc[b], a, b) for a, b in pairs(runs)]


def summary(runs: pd.DataFrame, info: StudyInfo) -> pd.DataFrame:
    """The per-variant table: mean ± std over seeds of what the README reports."""
    def pm(values: pd.Series, digits: int) -> str:
        if values.empty:
            return "–"
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"

    rows = []
    for variant, params in info.variants.items():
        r = runs[runs["variant"] == variant]
        rows.append({
            "variant": variant, "params": params, "runs": f"{len(r)}/{len(info.seeds)}",
            "test acc % (final)": pm(r["acc"], 2), "test acc % (best epoch)": pm(r["best_acc"], 2),
            "test loss": pm(r["loss"], 4), "train − test gap": pm(r["gap"], 2),
            "s / epoch": pm(r["sec_per_epoch"], 2), "Σ\\|w\\|": pm(r["abs_sum"], 0),
            "weights \\|w\\| < 1e-3": pm(100 * r["small_frac"], 1) + " %" if len(r) else "–",
        })
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table (pandas' to_markdown needs tabulate, which this project does not pin)."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def _dataset(runs: pd.DataFrame) -> str:
    return ", ".join(sorted(runs["p.dataset"].unique())) if "p.dataset" in runs else "dataset"


def curves_png(curves: pd.DataFrame, order: list[str], title: str, path: Path) -> None:
    """The four curves, one line per variant, band = ± std over seeds."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), sharex=True)
    for ax, (split, metric) in zip(axes.flat, CURVES):
        part = curves[(curves["split"] == split) & (curves["metric"] == metric)]
        sns.lineplot(part, x="epoch", y="value", hue="variant", hue_order=order, errorbar="sd", ax=ax,
                     marker="o", markersize=4, markeredgewidth=0, legend=ax is axes.flat[0])
        ax.set(title=f"{split} {metric}", ylabel="accuracy %" if metric == "acc" else "cross-entropy (log scale)")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if metric == "loss":  # log scale where the loss falls by more than a factor of 3
            if part["value"].min() > 0 and part["value"].max() > 3 * part["value"].min():
                ax.set_yscale("log")
            else:
                ax.set_ylabel("cross-entropy")
        else:  # the interesting part is near the top
            top = part.groupby(["variant", "epoch"])["value"].mean()
            ax.set_ylim(max(0, top.groupby("variant").max().min() - 3), min(100, top.max() + 0.5))
    sns.move_legend(axes.flat[0], "lower left", bbox_to_anchor=(0, 1.08), ncol=min(6, len(order)), title=None)
    fig.suptitle(title, y=1.0)
    _save(fig, path)


def features_png(curves: pd.DataFrame, order: list[str], title: str, path: Path) -> None:
    """Wu & He's Fig. 3 per variant: percentiles of the last block's norm input (top) and output
    (bottom) on a fixed test batch, per epoch, mean over seeds."""
    fig, axes = plt.subplots(2, len(order), figsize=(3.2 * len(order), 6.5), sharex=True, squeeze=False)
    for col, variant in enumerate(order):
        for row, where in enumerate(("pre_norm", "post_norm")):
            ax = axes[row, col]
            part = curves[(curves["variant"] == variant) & (curves["split"] == where)]
            for metric, line in part.groupby("metric"):
                mean = line.groupby("epoch")["value"].mean()
                ax.plot(mean.index, mean.values, marker="o", markersize=3, label=metric.replace("p", "", 1) + "th")
            ax.set_title(f"{variant}: norm {'input' if where == 'pre_norm' else 'output'}", fontsize=9)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set_xlabel("epoch" if row else "")
    axes[0, 0].legend(fontsize=7, title="percentile", title_fontsize=7)
    fig.suptitle(title)
    _save(fig, path)


def accuracy_png(runs: pd.DataFrame, order: list[str], title: str, path: Path) -> None:
    """Final test accuracy per variant: mean ± std (bar) and every seed (dots)."""
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(order) + 1.5))
    sns.pointplot(runs, x="acc", y="variant", order=order, errorbar="sd", linestyle="none", capsize=0.3,
                  color="black", err_kws={"linewidth": 1.2}, markersize=5, ax=ax)
    np.random.seed(0)  # stripplot jitters with numpy's global RNG: the same figure on every rebuild
    sns.stripplot(runs, x="acc", y="variant", order=order, hue="variant", legend=False, size=7, alpha=0.7,
                  zorder=3, ax=ax)
    ax.set(xlabel="final test accuracy % (mean ± std over seeds; dots = seeds)", ylabel="", title=title)
    _save(fig, path)


def batch_png(runs: pd.DataFrame, title: str, path: Path) -> None:
    """Test accuracy vs batch size, one line per norm (with any penalty), error bars = std over seeds."""
    label = runs.apply(lambda r: config.variant_name(r["p.norm"], r["p.groups"], r.get("p.l1", 0), r.get("p.l2", 0)),
                       axis=1)
    frame = runs.assign(norm=label, batch_size=runs["p.recipe.batch_size"].astype(int))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.pointplot(frame, x="batch_size", y="acc", hue="norm", errorbar="sd", dodge=0.3, capsize=0.1, ax=ax)
    ax.set(xlabel="batch size", ylabel="final test accuracy % (± std)", title=title)
    _save(fig, path)


def _panels(n: int, width: float, height: float) -> tuple[plt.Figure, np.ndarray]:
    """A grid of `n` panels, up to 4 a row, all axes off (the unused ones stay blank)."""
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def confusion_png(matrices: dict[str, pd.DataFrame], title: str, path: Path) -> None:
    """Errors only (diagonal hidden), summed over seeds, one panel per variant."""
    fig, axes = _panels(len(matrices), 4.6, 4.3)
    for ax, (variant, counts) in zip(axes.flat, matrices.items()):
        ax.axis("on")
        mask = np.eye(len(counts), dtype=bool)
        sns.heatmap(counts, mask=mask, annot=True, fmt="d", cmap="Reds", cbar=False, ax=ax,
                    annot_kws={"size": 6}, square=True)
        wrong = int(counts.values.sum() - np.trace(counts.values))
        ax.set(title=f"{variant}: {wrong} errors", xlabel="predicted", ylabel="actual")
    fig.suptitle(title)
    _save(fig, path)


def grids_png(grids: dict[str, bytes], title: str, path: Path) -> None:
    """The runs' own misclassified grids (seed 0 or the lowest seed), tiled."""
    fig, axes = _panels(len(grids), 7, 7.6)
    for ax, (variant, png) in zip(axes.flat, grids.items()):
        ax.imshow(plt.imread(io.BytesIO(png), format="png"))
        ax.set_title(variant, fontsize=18, fontweight="bold")
    fig.suptitle(title, fontsize=20)
    _save(fig, path)


def _size(runs: pd.DataFrame, info: StudyInfo) -> str:
    def values(col: str) -> str:
        return ", ".join(str(v) for v in sorted(runs[col].unique())) if col in runs else "?"

    limit = ", ".join("all" if v == 0 else str(v) for v in sorted(runs["p.limit"].unique())) if "p.limit" in runs else "?"
    devices = runs["device"].value_counts()
    where = ", ".join(f"{n} on {d}" for d, n in devices.items())
    return (f"{_dataset(runs)}; epochs: {values('p.recipe.epochs')}; seeds {', '.join(map(str, info.seeds))}; "
            f"training images: {limit}; {len(runs)} runs ({where}); "
            f"training time {runs['seconds'].sum() / 60:.1f} min in all")


def study_section(name: str, runs: pd.DataFrame, records: Records, out: Path) -> str:
    """README section for one study, writing its figures into `out`."""
    info = records.studies[name]
    order = [v for v in info.variants if v in set(runs["variant"])]
    dataset = _dataset(runs)
    lines = [f"## Study `{name}`: {info.description}", "", f"Size: {_size(runs, info)}.", "",
             markdown(summary(runs, info)), "",
             "Mean ± std over seeds. *final*: after the last epoch; *best epoch*: the highest test accuracy "
             "reached at any epoch (picked on the test set, so optimistic). Gap = train − test accuracy "
             "(points; train accuracy is measured with augmentation and dropout on). Σ|w| and the share of "
             "weights with |w| < 1e-3 are over conv/linear weights at the end of training.", ""]
    figures = [(f"{name}-curves.png", "train and test loss and accuracy per epoch (band: ± std over seeds)"),
               (f"{name}-accuracy.png", "final test accuracy per variant")]
    curves_png(records.curves[records.curves["study"] == name], order,
               f"{dataset} — study {name}: mean over seeds ± std", out / figures[0][0])
    accuracy_png(runs, order, f"{dataset} — study {name}", out / figures[1][0])
    if "p.recipe.batch_size" in runs and runs["p.recipe.batch_size"].nunique() > 1:
        figures.append((f"{name}-batch-size.png", "final test accuracy vs batch size, per norm"))
        batch_png(runs, f"{dataset} — study {name}: accuracy vs batch size", out / figures[-1][0])
    study_curves = records.curves[records.curves["study"] == name]
    if study_curves["split"].isin(["pre_norm", "post_norm"]).any():
        figures.append((f"{name}-features.png", "last block's feature distribution per epoch: 1st/20th/80th/99th "
                                                "percentiles of its norm's input and output (Wu & He, Fig. 3)"))
        features_png(study_curves, order, f"{dataset} — study {name}: feature percentiles on a fixed test batch",
                     out / figures[-1][0])
    matrices = {v: records.confusion[(name, v)] for v in order if (name, v) in records.confusion}
    if matrices:
        figures.append((f"{name}-confusion.png", "confusion matrices, errors only, summed over seeds"))
        confusion_png(matrices, f"{dataset} — study {name}: misclassifications (summed over seeds)",
                      out / figures[-1][0])
    grids = {v: records.grids[(name, v)] for v in order if (name, v) in records.grids}
    if grids:
        figures.append((f"{name}-misclassified.png", "misclassified test images, lowest seed of each variant"))
        grids_png(grids, f"{dataset} — study {name}: misclassified test images (one seed per variant)",
                  out / figures[-1][0])
    for file, caption in figures:
        lines += [f"![{caption}]({file})", f"*{caption}*", ""]
    found = verdicts(runs)
    lines += ["### Verdicts (computed from the final test accuracies above)", ""]
    lines += [f"- {v.text()}" for v in found] or ["- no pair of variants here differs only in the norm or only "
                                                   "in l1/l2, so nothing is compared."]
    n = runs.groupby("variant").size()
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()} to {n.max()}"
    lines += ["", f"How strong this is: {seeds} seeds per variant. A 'difference' needs p < {ALPHA} "
              "and a 95 % CI that excludes 0. With this few seeds the Welch test has only a few degrees of "
              "freedom, so only differences several times the seed-to-seed spread can be detected; "
              "'no detectable difference' means this study could not tell the variants apart, not that they "
              f"are equal. The {len(found)} comparisons are not corrected for multiple testing (at p < {ALPHA}, "
              f"about {ALPHA * len(found):.1f} of them would show a 'difference' by chance alone).", ""]
    return "\n".join(lines)


def provenance(records: Records) -> str:
    runs = records.runs
    span = (runs["time"].max() - runs["time"].min()) / 60 if len(runs) else 0
    lines = ["## How these results were made", "",
             f"- report: `{records.command}` (rebuilt from the experiments' git commits, no retraining)"]
    lines += [f"- study command: `{c}`" for c in sorted(runs["command"].dropna().unique()) if c]
    lines += [f"- hardware: {h}" for h in sorted(runs["host"].dropna().unique()) if h]
    lines += ["- devices: " + ", ".join(f"{n} runs on {d}" for d, n in runs["device"].value_counts().items()),
              f"- torch: {', '.join(sorted(runs['torch'].unique()))}",
              f"- wall time: {runs['seconds'].sum() / 60:.1f} min of training in {len(runs)} runs; "
              f"{span:.1f} min between the first and last experiment commits"]
    precisions = runs["precision"].value_counts()
    lines.append("- precision: " + ", ".join(f"{n} runs in {p}" for p, n in precisions.items())
                 + (" (bf16 and float32 runs are not bit-identical)" if len(precisions) > 1 else ""))
    lines += [f"- {note}" for note in records.notes]
    lines += ["- every run is a DVC experiment: `dvc exp show -A` lists them; the table `runs.csv` has one "
              "row per run with its experiment name and commit.", ""]
    return "\n".join(lines)


def build(records: Records, out: Path) -> Path:
    """Write out/README.md, the figures and runs.csv from the records; return the README path."""
    out.mkdir(parents=True, exist_ok=True)
    runs = records.runs
    if runs.empty:
        raise NormlabError("no finished experiments match the study plan: run `make study` first "
                           "(with the same --profile/--epochs/--set as the report)")
    sections = [study_section(name, runs[runs["study"] == name], records, out)
                for name in records.studies if (runs["study"] == name).any()]
    head = [f"# normlab results: {_dataset(runs)}", "",
            "Generated by `make report` from finished DVC experiments; every number and verdict below is "
            "computed from them. Do not edit by hand.", ""]
    write_text(out / "README.md", "\n".join(head + sections + [provenance(records)]))
    with atomic_path(out / "runs.csv") as tmp:
        runs.sort_values(["study", "variant", "seed"]).to_csv(tmp, index=False)
    return out / "README.md"


# --- reading experiments from git ------------------------------------------------------------

def flatten(resolved: dict, prefix: str = "p.") -> dict:
    """Nested params → one level of dotted keys: {'p.recipe.lr': 0.1, …}."""
    flat = {}
    for key, value in resolved.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _message_field(text: str, key: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(f"{key}: "):
            return line[len(key) + 2:]
    return None


def _confusion(csv: bytes, dataset: str) -> pd.DataFrame:
    """Counts actual × predicted, classes in the dataset's order (sorted if it is unknown)."""
    pairs_ = pd.read_csv(io.BytesIO(csv), dtype=str)
    try:
        classes = list(data.spec(dataset).classes)
    except NormlabError:  # a dataset this version does not know: its names, sorted
        classes = sorted(set(pairs_["actual"]) | set(pairs_["predicted"]))
    counts = pd.crosstab(pairs_["actual"], pairs_["predicted"]).reindex(index=classes, columns=classes,
                                                                         fill_value=0)
    return counts.fillna(0).astype(int)


def _read_run(run: study.Run, exp: study.Experiment) -> tuple[dict, pd.DataFrame, bytes | None, bytes | None]:
    eval_ = study.read_json(exp.sha, "metrics/eval.json")
    run_info = study.read_json(exp.sha, "metrics/run.json") or {}
    resolved = study.read_json(exp.sha, "model/params.json")
    if eval_ is None or resolved is None:
        raise NormlabError(f"experiment {exp.name} ({exp.sha[:7]}): metrics/eval.json or model/params.json "
                           "missing from its commit")
    msg = subprocess.run(["git", "log", "-1", "--format=%B", exp.sha], capture_output=True, text=True).stdout
    row = {"study": run.study, "variant": run.variant, "seed": run.seed,
           "acc": eval_["final"]["acc"], "best_acc": eval_["best"]["acc"], "loss": eval_["test"]["loss"],
           "gap": eval_["gap"], "abs_sum": eval_["weights"]["abs_sum"], "small_frac": eval_["weights"]["small_frac"],
           "seconds": run_info.get("seconds", math.nan), "sec_per_epoch": run_info.get("seconds_per_epoch", math.nan),
           "device": run_info.get("device", "?"), "torch": run_info.get("torch", "?"),
           # run.json records the precision since amp: auto became bf16 on CPUs too; before, it was bf16 on CUDA only
           "precision": run_info.get("precision", "bf16" if run_info.get("device") == "cuda" else "float32"),
           "host": _message_field(msg, "host"), "command": _message_field(msg, "command"),
           "time": exp.time, "name": exp.name, "sha": exp.sha, **flatten(resolved)}
    frames = []
    for split, metric in CURVES + FEATURES:
        folder = f"features/{split}" if (split, metric) in FEATURES else split
        tsv = study.show(exp.sha, f"dvclive/plots/metrics/{folder}/{metric}.tsv")
        if tsv:
            f = pd.read_csv(io.BytesIO(tsv), sep="\t")
            frames.append(pd.DataFrame({"study": run.study, "variant": run.variant, "seed": run.seed,
                                        "epoch": f["step"], "split": split, "metric": metric, "value": f[metric]}))
    curves = pd.concat(frames) if frames else pd.DataFrame()
    return row, curves, study.show(exp.sha, "plots/confusion.csv"), study.show(exp.sha, "plots/misclassified.png")


def collect(the_plan: study.Plan, command: str) -> Records:
    """Match each planned run to its finished experiment (same resolved params) and read it."""
    raw = yaml.safe_load(Path("params.yaml").read_text())
    done = study.finished()
    rows, curves, confusion, grids, notes = [], [], {}, {}, []
    missing = []
    for run in the_plan.runs:
        exp = done.get(study.science(study.resolve(raw, run)))
        if exp is None:
            missing.append(run.name)
            continue
        row, curve, csv, png = _read_run(run, exp)
        rows.append(row)
        curves.append(curve)
        key = (run.study, run.variant)
        if csv is not None:
            counts = _confusion(csv, row["p.dataset"])
            confusion[key] = confusion[key] + counts if key in confusion else counts
        if png is not None and key not in grids:
            grids[key] = png  # runs come in seed order: the lowest seed's grid
    if missing:
        notes.append(f"{len(missing)} planned runs have no finished experiment and are left out: "
                     + ", ".join(missing))
        print(f"warning: {len(missing)} of {len(the_plan.runs)} planned runs not found: {', '.join(missing[:5])}"
              + (" …" if len(missing) > 5 else ""), file=sys.stderr)
        tagged = [e.name for e in study.experiments() if e.name.split("-")[0] in the_plan.studies]
        if tagged and not rows:
            print(f"hint: {len(tagged)} experiments are named after these studies (e.g. {tagged[0]}) but have other "
                  "params: pass the --profile/--epochs/--set that `study run` was given", file=sys.stderr)
    infos = {name: StudyInfo(s.description, {v: " ".join(f"{k}={val}" for k, val in o.items())
                                             for v, o in s.variants.items()}, s.seeds)
             for name, s in the_plan.studies.items()}
    return Records(pd.DataFrame(rows), pd.concat(curves) if curves else pd.DataFrame(), confusion, grids, infos,
                   command, notes)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m normlab.report", description=__doc__.split("\n\n")[0])
    study.add_plan_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    the_plan = study.plan_from_args(args, argv)
    command = " ".join(["python -m normlab.report", *map(shlex.quote, argv)])
    readme = build(collect(the_plan, command), args.out)
    print(f"wrote {readme} and its figures from {len(the_plan.runs)} planned runs")


if __name__ == "__main__":
    run_stage(main)
