"""A finished study run, seen like an experiment: its record in the terminal (`make show RUN=…`:
the numbers, and the test accuracy per epoch as a curve of bars), and its per-epoch history
written in DVCLive's layout under .normlab/dvclive/<study>/<variant>/s<seed>/, so `dvc plots`
draws it beside a `dvc exp run`'s own curves.

Everything comes from the record: nothing is retrained and the training code has no part in
it. The folder is git-ignored (a view, rebuilt at will) but not DVC-ignored, or `dvc plots`
would not see it.
"""

from pathlib import Path
from typing import TextIO

from normlab.analysis.study import records, store
from normlab.analysis.study.records import Record
from normlab.io import write_text

FOLDER = Path(".normlab/dvclive")
BAR = 32  # characters of the widest bar
EIGHTHS = " ▏▎▍▌▋▊▉"
COLUMNS = ("train/loss", "train/acc", "test/loss", "test/acc")


def tsv_dir(record: Record, root: Path = FOLDER) -> Path:
    """Where the record's history goes, laid out as DVCLive's `dvclive/` folder."""
    return root / record.study / record.variant / f"s{record.seed}"


def write_tsvs(record: Record, root: Path = FOLDER) -> list[Path]:
    """One TSV per logged quantity, `plots/metrics/<name>.tsv` with columns `step` (the epoch)
    and the name's last part, as DVCLive writes them; return the paths."""
    names = sorted({key for epoch in record.history for key in epoch if key != "epoch"})
    written = []
    for name in names:
        rows = [(h["epoch"], h[name]) for h in record.history if name in h]
        path = tsv_dir(record, root) / "plots" / "metrics" / f"{name}.tsv"
        lines = [f"step\t{name.rsplit('/', 1)[-1]}", *(f"{e}\t{v!r}" for e, v in rows)]
        write_text(path, "\n".join(lines) + "\n")
        written.append(path)
    return written


def bar(value: float, low: float, high: float) -> str:
    """A bar of `value` between `low` (none) and `high` (BAR characters), in eighths."""
    share = 0.0 if high <= low else (value - low) / (high - low)
    eighths = round(share * BAR * 8)
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8].strip()


def _cell(key: str, value: float) -> str:
    """A loss to 4 decimals, an accuracy (%) to 2, right-aligned under its column's name."""
    return f"{value:11.4f}" if key.endswith("loss") else f"{value:11.2f}"


def curve(record: Record) -> list[str]:
    """The per-epoch table: train and test loss and accuracy, and test accuracy as a bar from
    a little under its lowest epoch to its highest, so the last epochs' differences show."""
    accs = [h["test/acc"] for h in record.history]
    low, high = min(accs) - 0.05 * (max(accs) - min(accs) or 1), max(accs)
    names = "".join(f"{key.replace('/', ' '):>11}" for key in COLUMNS)
    lines = [f"epoch{names}   {low:.2f} … {high:.2f} %"]
    for h in record.history:
        cells = "".join(_cell(key, h.get(key, float("nan"))) for key in COLUMNS)
        lines.append(f"{h['epoch']:5d}{cells}   {bar(h['test/acc'], low, high)}")
    return lines


def numbers(record: Record) -> list[str]:
    """What the run was and what it scored, where and how it ran."""
    p, r = record.params, record.params["recipe"]
    return [
        f"{record.label()}: {record.dataset}, norm {p['norm']}, l1 {p['l1']}, l2 {p['l2']}, "
        f"seed {record.seed}; {r['model']}, {r['epochs']} epochs, batch {r['batch_size']}, "
        f"lr {r['lr']} {r['schedule']}",
        f"final test acc {record.final.acc:.2f} % (loss {record.final.loss:.4f}); best "
        f"{record.best.acc:.2f} % at epoch {record.best.epoch}; train acc {record.train.acc:.2f}"
        f" %, gap {record.gap:+.2f}; learned: {'yes' if record.learned else 'NO'}",
        f"{record.param_count:,} params; Σ|w| {record.weights.abs_sum:.1f}, "
        f"|w| < 1e-3: {record.weights.small_frac:.1%}",
        f"{record.seconds:.1f} s of training on {record.host} ({record.device}, "
        f"{record.precision}, torch {record.torch}, {record.concurrent} at once); code "
        f"{record.code[:12]}" + (f"; {record.started} → {record.ended}" if record.started else ""),
    ]


def show(path: Path, out: TextIO, root: Path = FOLDER) -> None:
    """Print the record at `path` and write its TSVs, saying how `dvc plots` draws them."""
    if store.DIVERGED_NAME.match(Path(path).name):
        gone = store.read(path, records.Diverged)
        print(f"{gone.label()}: {gone.error} (a divergence record: no history)", file=out)
        return
    record = store.read(path)
    write_tsvs(record, root)
    folder = tsv_dir(record, root)
    acc = folder / "plots/metrics/test/acc.tsv"
    print("\n".join([*numbers(record), "", *curve(record), ""]), file=out)
    print(
        f"its history in DVCLive's layout: {folder}/plots/metrics/ — beside the workspace's "
        f"experiment:\n  dvc plots show dvclive/plots/metrics/test/acc.tsv {acc}\n"
        f"or beside another experiment's, every curve:\n  dvc plots diff <exp> --targets "
        f"dvclive/plots {folder}/plots",
        file=out,
    )
