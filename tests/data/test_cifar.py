"""CIFAR-10: the binary reader, the archive allow-list, the proxy's labelling and batches of
colour images (the residual net: tests/nets/test_resnet.py; the proxy end to end:
tests/e2e/test_cifar_proxy.py)."""

import dataclasses
import tarfile

import numpy as np
import pytest
import torch

from helpers import add_bytes, write_archive
from normlab.data import fetch, readers, specs
from normlab.data.augment import Batcher, make_augment
from normlab.errors import NormlabError

CLASSES = specs.CIFAR_CLASSES


def test_unpack_and_read_official_layout(tmp_path):
    written = write_archive(tmp_path / "a.tar.gz")
    raw = tmp_path / "raw"
    assert fetch.unpack_cifar(tmp_path / "a.tar.gz", raw) == list(specs.CIFAR_MEMBERS)
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        specs.CIFAR_MEMBERS
    )  # readme.html is not needed
    train, test, _ = readers.load("cifar10", raw)
    want_train = np.concatenate([written[n][0] for n in specs.CIFAR_TRAIN])
    assert train.images.dtype == torch.uint8 and train.images.shape == (100, 3, 32, 32)
    assert np.array_equal(train.images.numpy(), want_train)
    assert np.array_equal(
        train.labels.numpy(), np.concatenate([written[n][1] for n in specs.CIFAR_TRAIN])
    )
    assert train.labels.dtype == torch.int64
    assert (
        np.array_equal(test.images.numpy(), written[specs.CIFAR_TEST][0]) and len(test.labels) == 50
    )
    limited, _, _ = readers.load("cifar10", raw, limit=30)
    assert np.array_equal(limited.images.numpy(), want_train[:30])


def test_record_layout_is_label_then_rgb_planes(tmp_path):
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    (tmp_path / "b.bin").write_bytes(record)
    images, labels = readers.read_cifar_batch(tmp_path / "b.bin", 10)
    assert labels.tolist() == [7]
    assert [int(images[0, c].min()) for c in range(3)] == [10, 20, 30]
    assert [int(images[0, c].max()) for c in range(3)] == [10, 20, 30]


@pytest.mark.parametrize("size", [specs.CIFAR_RECORD * 2 + 5, 0, specs.CIFAR_RECORD - 1])
def test_wrong_record_length_names_the_file(tmp_path, size):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(NormlabError, match=r"data_batch_1\.bin: .*3073-byte"):
        readers.read_cifar_batch(path, 10)


def test_label_out_of_range_and_meta_mismatch(tmp_path):
    path = tmp_path / "test_batch.bin"
    path.write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(NormlabError, match=r"test_batch\.bin: label 12 out of range"):
        readers.read_cifar_batch(path, 10)
    write_archive(tmp_path / "a.tar.gz")
    fetch.unpack_cifar(tmp_path / "a.tar.gz", tmp_path / "raw")
    (tmp_path / "raw" / specs.CIFAR_META).write_text("cat\ndog\n")
    with pytest.raises(
        NormlabError, match=r"batches\.meta\.txt: class names \['cat', 'dog'\] differ"
    ):
        readers.load("cifar10", tmp_path / "raw")


def _symlink(tar):
    info = tarfile.TarInfo(f"{specs.CIFAR_DIR}/readme.html")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(info)


def _hardlink(tar):
    info = tarfile.TarInfo(f"{specs.CIFAR_DIR}/readme.html")
    info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
    tar.addfile(info)


def _device(tar):
    info = tarfile.TarInfo(f"{specs.CIFAR_DIR}/readme.html")
    info.type = tarfile.CHRTYPE
    tar.addfile(info)


MALICIOUS = {
    "unexpected member": (
        lambda tar: add_bytes(tar, f"{specs.CIFAR_DIR}/run.sh", b"rm -rf ~"),
        f"{specs.CIFAR_DIR}/run.sh",
    ),
    "path with '..'": (
        lambda tar: add_bytes(tar, f"{specs.CIFAR_DIR}/../../evil.bin", b"x"),
        f"{specs.CIFAR_DIR}/../../evil.bin",
    ),
    "absolute path": (lambda tar: add_bytes(tar, "/tmp/evil.bin", b"x"), "/tmp/evil.bin"),
    "link or special file": (_symlink, f"{specs.CIFAR_DIR}/readme.html"),
    "hardlink": (_hardlink, f"{specs.CIFAR_DIR}/readme.html"),
    "device": (_device, f"{specs.CIFAR_DIR}/readme.html"),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_member_rejected_and_nothing_written(tmp_path, case):
    extra, member = MALICIOUS[case]
    archive = tmp_path / "evil.tar.gz"
    write_archive(archive, extra=extra)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / specs.CIFAR_TEST).write_bytes(b"old")  # a file already there must survive untouched
    problem = "link or special file" if case in ("hardlink", "device") else case
    with pytest.raises(NormlabError) as err:
        fetch.unpack_cifar(archive, raw)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(archive) in msg and repr(member) in msg and problem in msg
    assert sorted(p.name for p in raw.iterdir()) == [specs.CIFAR_TEST]
    assert (raw / specs.CIFAR_TEST).read_bytes() == b"old"
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
        monkeypatch.setitem(specs.SPECS, name, dataclasses.replace(specs.SPECS[name], urls=()))
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
    assert f"md5 {fetch.md5(archive)}: no published md5 to check" in lines[0]
    assert len(readers.load("cifar10-proxy", offline / "raw")[0].labels) == 100
    assert (
        "PROXY, not CIFAR-10" in specs.describe("cifar10-proxy")
        and specs.describe("cifar10") == "cifar10"
    )
    monkeypatch.delenv(fetch.MIRROR_ENV)
    (offline / "raw" / "cifar-10-binary-proxy.tar.gz").unlink()
    with pytest.raises(NormlabError, match="no source worked.*PROXY, not CIFAR-10"):
        fetch.download("cifar10-proxy", offline / "raw")


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
