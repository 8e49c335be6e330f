"""What several test files build: fake run records and their histories and confusions, a tiny
study repository with the commands run in it, and CIFAR-10 archives in the official layout.

A module of its own rather than one test file importing another: tests/ mirrors the packages,
so the files that share these live in different folders.
"""

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from conftest import copy_code, parse, stage_env, write_dataset
from normlab.analysis.claims import registered as rg
from normlab.analysis.claims import verdicts as vd
from normlab.analysis.report.views import StudyView
from normlab.analysis.study import records
from normlab.data import specs


def history(
    epochs: int, acc: float, loss: float = 0.03, wobble: float = 0.0, reach: int | None = None
) -> list[dict]:
    """Per-epoch history ending at `acc`: test accuracy rises to within 1 point of it by
    epoch `reach` (default: the middle), test loss alternates by ± `wobble`."""
    reach = reach or max(1, epochs // 2)
    rows = []
    for e in range(1, epochs + 1):
        test_acc = acc if e == epochs else acc - (1.5 if e < reach else 0.2)
        sign = 1 if e % 2 else -1
        row = {
            "epoch": e,
            "train/loss": loss * 1.2 + sign * wobble,
            "train/acc": test_acc - 0.3,
            "test/loss": loss + sign * wobble,
            "test/acc": test_acc,
            "reg/l1": 0.0,
            "reg/l2": 0.0,
            "weights/abs_sum": 900.0,
            "weights/small_frac": 0.01,
            "lr": 0.1,
        }
        for where in ("pre_norm", "post_norm"):
            row |= {f"features/{where}/p{p:02d}": p / 50 + e / 10 for p in (1, 20, 80, 99)}
        rows.append(row)
    return rows


def confusion(
    acc: float, classes: int = 10, pair: tuple[int, int] = (3, 5), share: float = 0.2
) -> list[list[int]]:
    """10,000 test images; (100 − acc) % wrong, `share` of them between the classes of `pair`
    (both directions), the rest spread over neighbouring classes."""
    per = 10000 // classes
    counts = np.zeros((classes, classes), dtype=int)
    wrong = round((100 - acc) * 100)
    between = round(wrong * share)
    counts[pair[0], pair[1]] += between - between // 2
    counts[pair[1], pair[0]] += between // 2
    for k in range(wrong - between):
        i = k % classes
        j = (i + 1) % classes
        if {i, j} == set(pair):
            j = (i + 2) % classes
        counts[i, j] += 1
    for i in range(classes):
        counts[i, i] = per - counts[i].sum()
    return counts.tolist()


def fake_record(
    study: str,
    variant: str,
    seed: int,
    acc: float,
    *,
    norm: str = "bn",
    groups: int = 4,
    l1: float = 0.0,
    l2: float = 0.0,
    batch_size: int | None = None,
    dataset: str = "mnist",
    epochs: int = 4,
    loss: float | None = None,
    gap: float = -0.3,
    hist: list[dict] | None = None,
    conf: list[list[int]] | None = None,
    best: float | None = None,
) -> dict:
    """A run record as store.write stores it (plain dict), with valid resolved params."""
    overrides = {
        "norm": norm,
        "groups": groups,
        "l1": l1,
        "l2": l2,
        "seed": seed,
        "dataset": dataset,
        "train.epochs": epochs,
    }
    if batch_size:
        overrides["train.batch_size"] = batch_size
    params = parse(overrides).model_dump()
    classes = specs.spec(dataset).classes
    loss = loss if loss is not None else (0.03 if acc > 50 else 2.30)
    hist = hist or history(epochs, acc, loss)
    best_row = max(hist, key=lambda h: h["test/acc"])
    return {
        "schema": 1,
        "study": study,
        "variant": variant,
        "seed": seed,
        "dataset": dataset,
        "key": "fake",
        "params": params,
        "history": hist,
        "final": {"acc": acc, "loss": loss},
        "best": {
            "acc": best if best is not None else best_row["test/acc"],
            "epoch": best_row["epoch"],
        },
        "train": {"acc": acc + gap, "loss": loss * 1.2},
        "gap": gap,
        "learned": acc >= 100 / len(classes) + 5,
        "per_class_acc": {c: acc for c in classes},
        "confusion": conf or confusion(acc, len(classes)),
        "misclassified": {
            "index": list(range(25)),
            "predicted": [(i + 1) % 10 for i in range(25)],
            "actual": [i % 10 for i in range(25)],
            "confidence": [0.5] * 25,
        },
        "param_count": 8690,
        "weights": {"abs_sum": 900.0, "small_frac": 0.01},
        "seconds": 10.0 * epochs,
        "device": "cpu",
        "precision": "bf16",
        "torch": "2.13.0+cpu",
        "host": "test host (2 CPUs)",
        "code": "0123456789" * 4,
        "data_md5": {},
        "packed": 1,
        "concurrent": 1,
        "dvc": None,
    }


def resolved(overrides: dict | None = None) -> dict:
    """Resolved params (as a study plans them) of the repo's params.yaml with overrides."""
    return parse(overrides).model_dump()


def _who(params: dict) -> dict:
    """The fields every record of a run starts with: which run, under which params."""
    return {
        "schema": 1,
        "study": "norms",
        "variant": "bn",
        "seed": params["seed"],
        "dataset": "mnist",
        "key": records.identity(params),
        "params": params,
    }


def record_dict(params: dict | None = None, acc: float = 99.47) -> dict:
    """A complete, valid record of a run (default: 2 epochs), as a runner would write it."""
    params = params or resolved({"train.epochs": 2})
    epochs = params["recipe"]["epochs"]
    epoch = {
        "train/loss": 0.1,
        "train/acc": 97.0,
        "test/loss": 0.05,
        "test/acc": acc,
        "reg/l1": 0.0,
        "reg/l2": 0.0,
        "weights/abs_sum": 950.5,
        "weights/small_frac": 0.01,
        "lr": 0.0001,
        "features/pre_norm/p01": 0.0,
        "features/post_norm/p99": 2.5,
    }
    return {
        **_who(params),
        "history": [{"epoch": e, **epoch, "test/acc": 98.0} for e in range(1, epochs)]
        + [{"epoch": epochs, **epoch}],
        "final": {"acc": acc, "loss": 0.0171},
        "best": {"acc": acc, "epoch": epochs},
        "train": {"acc": 97.0, "loss": 0.1},
        "gap": round(97.0 - acc, 2),
        "learned": True,
        "per_class_acc": {str(i): 99.0 for i in range(10)},
        "confusion": [[990 if i == j else 1 for j in range(10)] for i in range(10)],
        "misclassified": {
            "index": [3, 7],
            "predicted": [1, 2],
            "actual": [7, 3],
            "confidence": [0.61, 0.55],
        },
        "param_count": 8690,
        "weights": {"abs_sum": 950.5, "small_frac": 0.01},
        "seconds": 252.5,
        "device": "cpu",
        "precision": "bf16",
        "torch": "2.13.0+cpu",
        "host": "AMD EPYC (2 CPUs)",
        "code": "d55ce01",
        "data_md5": {"a.gz": "0" * 32},
        "packed": 1,
        "concurrent": 1,
        "dvc": None,
    }


def write_raw(path: Path, raw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw))
    return path


def diverged_dict(params: dict | None = None) -> dict:
    """A complete, valid divergence record, as a worker writes it when loop.fit stops a run."""
    params = params or resolved({"train.epochs": 2, "train.lr": 1e6, "seed": 2})
    return {
        **_who(params),
        "error": "diverged at epoch 1, step 3 (loss=nan): lower lr or l1",
        "host": "AMD EPYC (2 CPUs)",
        "code": "0" * 40,
        "torch": "2.13.0+cpu",
        "device": "cpu",
        "precision": "float32",
    }


HOST = "AMD EPYC (2 CPUs)"  # the machine record_dict's records name

TINY = """
studies:
  t:
    epochs: {epochs}
    seeds: [0]
    set: {{data.limit: 256, train.batch_size: {batch}, device: cpu, engine.threads: 1}}
    variants:
{variants}
"""


def study_text(epochs: int = 1, batch: int = 64, variants: tuple[str, ...] = ("bn", "ln")) -> str:
    lines = "\n".join(f"      {v}: {{norm: {v}}}" for v in variants)
    return TINY.format(epochs=epochs, batch=batch, variants=lines)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, env=env_for(cwd), capture_output=True, text=True)


def env_for(repo: Path) -> dict[str, str]:
    """Stage environment, a checkpoint cache of the test's own, and a git identity."""
    who = {
        f"GIT_{role}_{key}": value
        for role in ("AUTHOR", "COMMITTER")
        for key, value in (("NAME", "normlab-test"), ("EMAIL", "test@normlab.invalid"))
    }
    return {**stage_env(), **who, "NORMLAB_CACHE": str(repo.parent / f"{repo.name}-cache")}


def tiny_repo(dest: Path, text: str) -> Path:
    """normlab's code, a study file `studies/t.yaml` and synthetic MNIST, committed in `dest`."""
    copy_code(dest)
    write_dataset(dest / "data/raw/mnist", n_train=600, n_test=200)
    (dest / "studies").mkdir()
    (dest / "studies/t.yaml").write_text(text)
    (dest / ".gitignore").write_text("/data/raw/\n__pycache__/\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "normlab under test"]):
        assert git(*args, cwd=dest).returncode == 0
    return dest


def study(repo: Path, *args: str, module: str = "study") -> subprocess.CompletedProcess:
    """`python -m normlab.analysis.<module> <args>` in `repo` (module: study or report)."""
    return subprocess.run(
        [sys.executable, "-m", f"normlab.analysis.{module}", *args],
        cwd=repo,
        env=env_for(repo),
        capture_output=True,
        text=True,
        timeout=600,
    )


def cifar_records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """n random images (N×3×32×32) and labels, and their bytes in the official record layout."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    blob = b"".join(
        bytes([label]) + img.tobytes() for label, img in zip(labels, images, strict=True)
    )  # label, R, G, B planes
    return images, labels, blob


def add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def write_archive(
    path: Path, per_batch: int = 20, n_test: int = 50, extra=None, skip: str = ""
) -> dict:
    """A tar.gz in the official layout (folder entry, 5 data batches, test batch, meta, readme);
    `extra(tar)` may add members. Returns what was written, for comparison."""
    written = {}
    with tarfile.open(path, "w:gz") as tar:
        folder = tarfile.TarInfo(specs.CIFAR_DIR)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for i, name in enumerate((*specs.CIFAR_TRAIN, specs.CIFAR_TEST)):
            images, labels, blob = cifar_records(
                n_test if name == specs.CIFAR_TEST else per_batch, seed=i
            )
            written[name] = (images, labels)
            if name != skip:
                add_bytes(tar, f"{specs.CIFAR_DIR}/{name}", blob)
        add_bytes(
            tar,
            f"{specs.CIFAR_DIR}/{specs.CIFAR_META}",
            ("\n".join(specs.CIFAR_CLASSES) + "\n\n").encode(),
        )
        add_bytes(tar, f"{specs.CIFAR_DIR}/readme.html", b"<html></html>")
        if extra:
            extra(tar)
    return written


# Fakes for the registered (v2) claims: tests/analysis/claims and tests/analysis/report share them.
ALPHA, POWER = 0.05, 0.8
BASE = {"id": "x1", "source": "999 (a)", "text": "a claim", "file": "seeds", "study": "fake"}


def v2(**fields) -> object:
    """One registered test; its seeds default to 0–3, the fake runs' seeds."""
    fields = {"seeds": [0, 1, 2, 3], "n": 4} | fields
    raw = {"version": 2, "pilot_seeds": [0, 1, 2], "alpha": ALPHA, "power": POWER}
    return rg.Registration.model_validate(raw | {"claims": [BASE | fields]}).claims[0]


def v3(**fields) -> object:
    """One v3 test (studies/claims-v3.yaml's kinds); its seeds default to 0–2."""
    fields = {"seeds": [0, 1, 2], "n": 3, "margin": 0.1} | fields
    raw = {"version": 3, "alpha": ALPHA, "power": POWER}
    return rg.RegistrationV3.model_validate(raw | {"claims": [BASE | fields]}).claims[0]


def make(variant: str, values: list, build, first_seed: int = 0, **kw) -> list[vd.Outcome]:
    """One run per value; build(value) → fake_record keywords (acc at least)."""
    made = []
    for seed, value in enumerate(values, start=first_seed):
        extra = {"acc": 99.3, **build(value), **kw}
        acc = extra.pop("acc")
        made.append(vd.run_of(fake_record("fake", variant, seed, acc, **extra)))
    return made


def accs(variant: str, values: list[float], first_seed: int = 0) -> list[vd.Outcome]:
    return make(variant, values, lambda v: {"acc": v}, first_seed)


def view(runs: list[vd.Outcome]) -> StudyView:
    variants = {r.variant: "" for r in runs}
    seeds = tuple(sorted({r.seed for r in runs}))
    return StudyView("fake", "a fake study", runs[0].dataset, 6, seeds, variants, tuple(runs))


def spread(centre: float, sd: float = 0.05) -> list[float]:
    """Four values around `centre` with sample sd `sd`, exactly."""
    offsets = np.array([-3.0, -1.0, 1.0, 3.0])
    return list(centre + offsets * sd / offsets.std(ddof=1))
