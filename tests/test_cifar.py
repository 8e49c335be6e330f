"""CIFAR-10: the binary reader, the archive allow-list, the proxy's labelling, the residual net,
and one real `dvc exp run` on a tiny synthetic archive served through NORMLAB_DATA_MIRROR."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import committed_params, git_repo_copy
from normlab import config, data, fetch, models
from normlab.augment import Batcher, make_augment
from normlab.errors import NormlabError
from normlab.prepare import validate

CLASSES = data.CIFAR_CLASSES


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
        folder = tarfile.TarInfo(data.CIFAR_DIR)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for i, name in enumerate((*data.CIFAR_TRAIN, data.CIFAR_TEST)):
            images, labels, blob = cifar_records(
                n_test if name == data.CIFAR_TEST else per_batch, seed=i
            )
            written[name] = (images, labels)
            if name != skip:
                add_bytes(tar, f"{data.CIFAR_DIR}/{name}", blob)
        add_bytes(
            tar, f"{data.CIFAR_DIR}/{data.CIFAR_META}", ("\n".join(CLASSES) + "\n\n").encode()
        )
        add_bytes(tar, f"{data.CIFAR_DIR}/readme.html", b"<html></html>")
        if extra:
            extra(tar)
    return written


def test_unpack_and_read_official_layout(tmp_path):
    written = write_archive(tmp_path / "a.tar.gz")
    raw = tmp_path / "raw"
    assert fetch.unpack_cifar(tmp_path / "a.tar.gz", raw) == list(data.CIFAR_MEMBERS)
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        data.CIFAR_MEMBERS
    )  # readme.html is not needed
    train, test = data.load("cifar10", raw)
    want_train = np.concatenate([written[n][0] for n in data.CIFAR_TRAIN])
    assert train.images.dtype == torch.uint8 and train.images.shape == (100, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), want_train)
    assert np.array_equal(
        train.labels.numpy(), np.concatenate([written[n][1] for n in data.CIFAR_TRAIN])
    )
    assert train.labels.dtype == torch.int64
    assert (
        np.array_equal(test.images.numpy(), written[data.CIFAR_TEST][0]) and len(test.labels) == 50
    )
    limited, _ = data.load("cifar10", raw, limit=30)
    assert np.array_equal(limited.images.numpy(), want_train[:30])


def test_record_layout_is_label_then_rgb_planes(tmp_path):
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    (tmp_path / "b.bin").write_bytes(record)
    images, labels = data.read_cifar_batch(tmp_path / "b.bin", 10)
    assert labels.tolist() == [7]
    assert [int(images[0, c].min()) for c in range(3)] == [10, 20, 30]
    assert [int(images[0, c].max()) for c in range(3)] == [10, 20, 30]


@pytest.mark.parametrize("size", [data.CIFAR_RECORD * 2 + 5, 0, data.CIFAR_RECORD - 1])
def test_wrong_record_length_names_the_file(tmp_path, size):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(NormlabError, match=r"data_batch_1\.bin: .*3073-byte"):
        data.read_cifar_batch(path, 10)


def test_label_out_of_range_and_meta_mismatch(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(NormlabError, match=r"test_batch\.bin: label 12 out of range"):
        data.read_cifar_batch(path, 10)
    write_archive(tmp_path / "a.tar.gz")
    fetch.unpack_cifar(tmp_path / "a.tar.gz", tmp_path / "raw")
    (tmp_path / "raw" / data.CIFAR_META).write_text("cat\ndog\n")
    with pytest.raises(
        NormlabError, match=r"batches\.meta\.txt: class names \['cat', 'dog'\] differ"
    ):
        data.load("cifar10", tmp_path / "raw")


def _symlink(tar):
    info = tarfile.TarInfo(f"{data.CIFAR_DIR}/readme.html")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def _hardlink(tar):
    info = tarfile.TarInfo(f"{data.CIFAR_DIR}/readme.html")
    info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    tar.addfile(info)


def _device(tar):
    info = tarfile.TarInfo(f"{data.CIFAR_DIR}/readme.html")
    info.type = tarfile.CHRTYPE
    tar.addfile(info)


MALICIOUS = {
    "unexpected member": (
        lambda tar: add_bytes(tar, f"{data.CIFAR_DIR}/run.sh", b"rm -rf ~"),
        f"{data.CIFAR_DIR}/run.sh",
    ),
    "path with '..'": (
        lambda tar: add_bytes(tar, f"{data.CIFAR_DIR}/../../evil.bin", b"x"),
        f"{data.CIFAR_DIR}/../../evil.bin",
    ),
    "absolute path": (lambda tar: add_bytes(tar, "/tmp/evil.bin", b"x"), "/tmp/evil.bin"),
    "link or special file": (_symlink, f"{data.CIFAR_DIR}/readme.html"),
    "hardlink": (_hardlink, f"{data.CIFAR_DIR}/readme.html"),
    "device": (_device, f"{data.CIFAR_DIR}/readme.html"),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_member_rejected_and_nothing_written(tmp_path, case):
    extra, member = MALICIOUS[case]
    archive = tmp_path / "evil.tar.gz"
    write_archive(archive, extra=extra)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / data.CIFAR_TEST).write_bytes(b"old")  # a file already there must survive untouched
    problem = "link or special file" if case in ("hardlink", "device") else case
    with pytest.raises(NormlabError) as err:
        fetch.unpack_cifar(archive, raw)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(archive) in msg and repr(member) in msg and problem in msg
    assert sorted(p.name for p in raw.iterdir()) == [data.CIFAR_TEST]
    assert (raw / data.CIFAR_TEST).read_bytes() == b"old"
    assert not list(tmp_path.glob(".raw.unpack*"))  # the staging folder is gone


def test_missing_member_and_broken_archive(tmp_path):
    write_archive(tmp_path / "a.tar.gz", skip="data_batch_3.bin")
    with pytest.raises(
        NormlabError, match=r"a\.tar\.gz: missing cifar-10-batches-bin/data_batch_3\.bin"
    ):
        fetch.unpack_cifar(tmp_path / "a.tar.gz", tmp_path / "raw")
    whole = (tmp_path / "a.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(NormlabError, match=r"cut\.tar\.gz: not a readable tar\.gz archive"):
        fetch.unpack_cifar(tmp_path / "cut.tar.gz", tmp_path / "raw2")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """cwd = an empty folder (no shipped data) and no official hosts: only the mirror can answer."""
    monkeypatch.chdir(tmp_path)
    for name in ("cifar10", "cifar10-proxy"):
        monkeypatch.setitem(data.SPECS, name, dataclasses.replace(data.SPECS[name], urls=()))
    return tmp_path


def test_real_cifar10_never_takes_an_archive_with_another_md5(offline, monkeypatch):
    """The proxy (or any other archive) laid out as cifar10 in the mirror is refused, not used."""
    mirror = offline / "mirror"
    (mirror / "cifar10").mkdir(parents=True)
    write_archive(mirror / "cifar10" / "cifar-10-binary.tar.gz")
    monkeypatch.setenv(fetch.MIRROR_ENV, str(mirror))
    with pytest.raises(
        NormlabError, match=r"md5 [0-9a-f]{32}, expected c32a1d4ab5d03f1284b67883e8d87530"
    ):
        fetch.download("cifar10", offline / "raw" / "cifar10")
    assert not (offline / "raw" / "cifar10" / "cifar-10-binary.tar.gz").exists()


def test_proxy_comes_from_the_mirror_and_says_so(offline, monkeypatch):
    mirror = offline / "mirror"
    (mirror / "cifar10-proxy").mkdir(parents=True)
    archive = mirror / "cifar10-proxy" / "cifar-10-binary-proxy.tar.gz"
    write_archive(archive)
    monkeypatch.setenv(fetch.MIRROR_ENV, str(mirror))
    lines = fetch.download("cifar10-proxy", offline / "raw")
    assert f"md5 {data.md5(archive)}: no published md5 to check" in lines[0]
    assert len(data.load("cifar10-proxy", offline / "raw")[0].labels) == 100
    assert (
        "PROXY, not CIFAR-10" in data.describe("cifar10-proxy")
        and data.describe("cifar10") == "cifar10"
    )
    monkeypatch.delenv(fetch.MIRROR_ENV)
    (offline / "raw" / "cifar-10-binary-proxy.tar.gz").unlink()
    with pytest.raises(NormlabError, match="no source worked.*PROXY, not CIFAR-10"):
        fetch.download("cifar10-proxy", offline / "raw")


def test_proxy_trains_with_the_cifar10_recipe():
    raw = committed_params()
    params = config.parse({**raw, "dataset": "cifar10-proxy"})
    assert params.recipe == config.parse({**raw, "dataset": "cifar10"}).recipe
    assert params.recipe.model == "resnet"


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "in", "none"])
def test_resnet_under_50k_params_for_every_norm(norm):
    model = models.build("resnet", norm, 8, 0.1, 3, 10)
    n = models.count_params(model)
    assert 40_000 < n < 50_000
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("groups", [1, 2, 4, 8, 16])
def test_resnet_groups_reach_every_norm_layer(groups):
    model = models.build("resnet", "gn", groups, 0.0, 3, 10)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(layers) == 7 and all(m.num_groups == groups for m in layers)


def test_resnet_groups_that_do_not_divide_a_layer_name_it():
    with pytest.raises(
        NormlabError, match=r"groups = 3 does not divide the 32 channels of layer 'stem'"
    ):
        models.build("resnet", "gn", 3, 0.0, 3, 10)
    raw = committed_params()
    with pytest.raises(
        NormlabError, match=r"groups = 32 does not divide the 112 channels of layer 'stage2.down'"
    ):
        validate(
            config.parse({**raw, "dataset": "cifar10", "norm": "gn", "groups": 32, "device": "cpu"})
        )


def test_augment_and_normalisation_on_rgb_batches():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    images[:, 0] //= 4  # channels with different statistics
    batcher = Batcher.from_images(images, augment=make_augment(0, 4, True, 8, 32))
    x = images.float() / 255
    assert torch.allclose(batcher.mean.flatten(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(batcher.std.flatten(), x.std(dim=(0, 2, 3)), atol=1e-6)
    out = batcher(images, train=True)
    assert out.shape == (64, 3, 32, 32) and torch.isfinite(out).all()
    assert not torch.equal(out, batcher(images, train=False))  # augmentation did something


@pytest.mark.e2e
@pytest.mark.slow
def test_dvc_exp_run_cifar10_proxy_end_to_end(tmp_path):
    """`dvc exp run -S dataset=cifar10-proxy` on a tiny synthetic archive served by the mirror;
    every result it writes says PROXY and uses the CIFAR-10 class names."""
    repo = git_repo_copy(tmp_path / "repo", skip=("data/mnist/", "tests/"))
    mirror = tmp_path / "mirror"
    (mirror / "cifar10-proxy").mkdir(parents=True)
    write_archive(mirror / "cifar10-proxy" / "cifar-10-binary-proxy.tar.gz")
    env = {
        **os.environ,
        fetch.MIRROR_ENV: str(mirror),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    sh(
        "dvc",
        "exp",
        "run",
        "-S",
        "dataset=cifar10-proxy",
        "-S",
        "norm=gn",
        "-S",
        "groups=4",
        "-S",
        "data.limit=60",
        "-S",
        "train.epochs=1",
        "-S",
        "train.batch_size=6",
        "-S",
        "device=cpu",
    )
    run = json.loads((repo / "metrics/run.json").read_text())
    assert run["data"].startswith("cifar10-proxy (PROXY, not CIFAR-10")
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert set(ev["per_class_acc"]) == set(CLASSES)
    assert ev["params"] == models.count_params(models.build("resnet", "gn", 4, 0.0, 3, 10))
    confusion = (repo / "plots/confusion.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted" and len(confusion) == 51
    assert {row.split(",")[0] for row in confusion[1:]} <= set(CLASSES)
    assert sorted(p.name for p in (repo / "data/raw/cifar10-proxy").iterdir()) == sorted(
        ["cifar-10-binary-proxy.tar.gz", *data.CIFAR_MEMBERS]
    )
    assert "cifar10-proxy" in sh("dvc", "exp", "show", "--csv")
