"""Training faults: exact repeats, resume after SIGKILL, divergence, atomic writes, safe loading."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import (
    MNIST,
    ROOT,
    cnn,
    copy_code,
    recipe_with,
    resolve,
    run_stage,
    stage_env,
    synthetic_images,
    write_dataset,
    write_params,
)
from normlab.data.augment import Batcher
from normlab.data.readers import Split
from normlab.io import atomic_path, write_json
from normlab.train.checkpoint import CACHE_ENV, Checkpoint, fingerprint
from normlab.train.device import make_autocast, precision
from normlab.train.loop import Fitted, fit
from normlab.train.optim import make_optimizer

# Small enough for a loaded 2-core machine (a few seconds per epoch), long enough to kill mid-run;
# on the synthetic dataset written to data/raw/mnist, whatever dataset the workspace params name.
RUN = {**MNIST, "data.limit": 256, "train.epochs": 3, "train.batch_size": 32}


def checkpoints(cache: Path) -> list[Path]:
    """The per-run checkpoints in normlab's cache folder (outside every DVC output)."""
    return sorted((cache / "checkpoints").glob("*.pt"))


def _prepare(repo: Path, overrides: dict) -> Path:
    write_dataset(repo / "data" / "raw" / "mnist", n_train=256, n_test=100)
    write_params(repo, overrides)
    return resolve(repo)


def _train_and_evaluate(repo: Path) -> None:
    for stage in ("train", "evaluate"):
        result = run_stage(repo, stage)
        assert result.returncode == 0, result.stderr


def _tsv_without_time(path: Path) -> list[dict]:
    """DVCLive's per-epoch rows minus the wall-clock timestamp column."""
    with open(path) as f:
        return [
            {k: v for k, v in row.items() if k != "timestamp"}
            for row in csv.DictReader(f, delimiter="\t")
        ]


def _results(repo: Path) -> dict:
    plots = sorted((repo / "dvclive" / "plots").rglob("*.tsv"))
    return {
        "eval.json": (repo / "metrics/eval.json").read_bytes(),
        "dvclive/metrics.json": (repo / "dvclive/metrics.json").read_bytes(),
        "confusion.csv": (repo / "plots/confusion.csv").read_bytes(),
        **{str(p.relative_to(repo)): _tsv_without_time(p) for p in plots},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted train + evaluate of RUN, shared by the determinism and resume tests."""
    root = tmp_path_factory.mktemp("reference")
    repo = copy_code(root / "repo")
    with pytest.MonkeyPatch.context() as env:  # set up before checkpoint_cache: its own cache
        env.setenv(CACHE_ENV, str(root / "normlab-cache"))
        _train_and_evaluate(_prepare(repo, RUN))
    return _results(repo)


def test_same_params_and_seed_give_byte_identical_metrics(repo, reference):
    _train_and_evaluate(_prepare(repo, RUN))
    results = _results(repo)
    assert results == reference
    assert b'"acc"' in results["eval.json"]


def _epochs_done(path: Path) -> int:
    try:
        return len(torch.load(path, map_location="cpu", weights_only=True)["history"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def test_run_killed_mid_way_resumes_to_identical_metrics(repo, reference, tmp_path, monkeypatch):
    _prepare(repo, RUN)
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))  # stage_env() passes it on to the stages
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train"],
        cwd=repo,
        env=stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not checkpoints(cache) or _epochs_done(checkpoints(cache)[0]) < 1:
            assert proc.poll() is None, "train ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    [saved] = checkpoints(cache)
    done = _epochs_done(saved)
    assert 1 <= done < RUN["train.epochs"] and not (repo / "model/model.pt").exists()

    resumed = run_stage(repo, "train")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {saved}: {done} of {RUN['train.epochs']} epochs done" in resumed.stdout
    assert checkpoints(cache) == []  # removed once model.pt is written
    assert run_stage(repo, "evaluate").returncode == 0
    assert _results(repo) == reference


def _tiny_fit(model: torch.nn.Module, checkpoint: Checkpoint, epochs: int) -> Fitted:
    images, labels = synthetic_images(64, seed=0)
    split = Split(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype("int64")))
    recipe = recipe_with(epochs=epochs, batch_size=32, lr=0.05, momentum=0.9, schedule="constant")
    autocast = make_autocast(torch.device("cpu"), "float32")
    return fit(
        model,
        train=split,
        test=split,
        batcher=Batcher.from_images(split.images),
        recipe=recipe,
        l1=0.0,
        l2=0.0,
        seed=0,
        eval_batch_size=64,
        autocast=autocast,
        checkpoint=checkpoint,
    )


def test_checkpoint_of_other_params_is_not_resumed(tmp_path):
    path = tmp_path / "checkpoint.pt"
    params = {"norm": "bn", "lr": 0.05}
    mine, other = fingerprint(params), fingerprint({**params, "lr": 0.1})
    assert mine != other
    torch.manual_seed(0)
    _tiny_fit(cnn("bn", 4, 0.0), Checkpoint(path, other), epochs=1)  # 1 epoch of another run

    def restore(fp: str) -> tuple[list[dict], float, torch.nn.Module]:
        torch.manual_seed(1)
        model = cnn("bn", 4, 0.0)
        opt = make_optimizer(model, 0.05, 0.9, 0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        return *Checkpoint(path, fp).restore(model, opt, sched, epochs=3), model

    history, seconds, model = restore(mine)
    assert seconds == 0.0 and history == []
    torch.manual_seed(1)
    fresh = cnn("bn", 4, 0.0)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True)
    )
    history, seconds, _ = restore(other)  # guard: the same file is resumed by the run it belongs to
    assert seconds > 0 and len(history) == 1


@pytest.mark.parametrize("overrides", [{"train.lr": 1e6}, {"l1": 1e40}], ids=["lr-1e6", "l1-1e40"])
def test_divergence_stops_with_one_line_and_writes_no_model(synthetic_repo, overrides):
    write_params(synthetic_repo, {**MNIST, "data.limit": 500, "train.epochs": 2, **overrides})
    result = run_stage(resolve(synthetic_repo), "train")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("error: diverged at epoch 1, step ") and line.endswith(
        "): lower lr or l1"
    ), line
    assert "(loss=nan)" in line or "(loss=inf)" in line
    assert not (synthetic_repo / "model/model.pt").exists()
    assert checkpoints(Path(os.environ[CACHE_ENV])) == []  # a diverged epoch is never checkpointed
    live = synthetic_repo / "dvclive/metrics.json"  # DVCLive writes {} on exit: no epoch was logged
    assert not live.exists() or json.loads(live.read_text()) == {}
    evaluate = run_stage(synthetic_repo, "evaluate")  # so no metrics can be written from it either
    assert evaluate.returncode == 2 and "model/model.pt: not found" in evaluate.stderr
    assert not (synthetic_repo / "metrics").exists()


def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path):
    target = tmp_path / "metrics" / "eval.json"
    write_json(target, {"acc": 99.0})
    old = target.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"acc": 1')  # half a file, then the stage dies
            raise RuntimeError("killed")
    assert target.read_bytes() == old
    assert sorted(p.name for p in target.parent.iterdir()) == ["eval.json"]  # no temp file left
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


class _Payload:
    """Unpickling this runs open(marker, 'w'): the stand-in for arbitrary code in a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_checkpoint_with_a_pickled_object_is_ignored_not_executed(tmp_path, capsys):
    marker, path = tmp_path / "pwned", tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": "x", "history": [], "model": _Payload(marker)}, path)
    model = cnn("bn", 4, 0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    assert Checkpoint(path, "x").restore(model, opt, sched, epochs=2) == ([], 0.0)
    assert not marker.exists()
    assert "ignoring checkpoint" in capsys.readouterr().out
    torch.load(path, weights_only=False)[
        "model"
    ].close()  # guard: the payload is live without weights_only
    assert marker.exists()


def test_evaluate_refuses_a_model_file_with_a_pickled_object(synthetic_repo):
    marker = synthetic_repo / "pwned"
    write_params(synthetic_repo, {**MNIST, "data.limit": 500})
    resolve(synthetic_repo)
    torch.save({"model": _Payload(marker), "history": []}, synthetic_repo / "model/model.pt")
    result = run_stage(synthetic_repo, "evaluate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: model/model.pt:"), result.stderr
    assert not marker.exists() and not (synthetic_repo / "metrics").exists()


def test_dvc_analytics_are_off_in_the_committed_config():
    """DVC would otherwise phone home on every command; the repo's .dvc/config turns it off."""
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"\[core\][^\[]*\banalytics\s*=\s*false", config)


def test_amp_picks_the_precision_it_says_and_autocast_computes_in_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision(cpu, "off") == precision(cuda, "off") == "float32"
    assert precision(cpu, "bf16") == precision(cuda, "bf16") == precision(cuda, "auto") == "bf16"
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # the CPU decides `auto` there
    assert precision(cpu, "auto") == ("bf16" if native else "float32")
    conv, x = torch.nn.Conv2d(1, 2, 3), torch.rand(1, 1, 5, 5)
    for dtype, torch_dtype in (("bf16", torch.bfloat16), ("float32", torch.float32)):
        with make_autocast(cpu, dtype)():
            assert conv(x).dtype == torch_dtype
