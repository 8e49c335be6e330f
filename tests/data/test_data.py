"""IDX reader and data sources: verified copies only, clear one-line errors naming the file."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import IDX_NAMES, synthetic_images, write_dataset, write_idx
from normlab.data import fetch, readers, specs
from normlab.errors import NormlabError

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: refused at once, no real network


def test_idx_reader_round_trips_synthetic_files(tmp_path):
    images, labels = synthetic_images(300, seed=3)
    assert (readers.read_idx(write_idx(tmp_path / "i.gz", images), 3) == images).all()
    assert (readers.read_idx(write_idx(tmp_path / "l.gz", labels), 1) == labels).all()


def test_load_gives_uint8_nchw_and_limit_keeps_the_first_images(tmp_path):
    write_dataset(tmp_path, n_train=300, n_test=120)
    images, labels = synthetic_images(300, seed=0)
    train, test, val = readers.load("mnist", tmp_path, limit=100)
    assert val is None
    assert train.images.shape == (100, 1, 28, 28) and train.images.dtype.is_floating_point is False
    assert (train.images[:, 0].numpy() == images[:100]).all() and (
        train.labels.numpy() == labels[:100]
    ).all()
    assert test.images.shape == (120, 1, 28, 28) and len(test.labels) == 120


def test_val_holds_out_the_last_images_and_limit_takes_from_the_rest(tmp_path):
    write_dataset(tmp_path, n_train=300, n_test=120)
    images, labels = synthetic_images(300, seed=0)
    train, _, val = readers.load("mnist", tmp_path, limit=100, val=50)
    assert (val.images[:, 0].numpy() == images[250:]).all()
    assert (val.labels.numpy() == labels[250:]).all()
    assert (train.images[:, 0].numpy() == images[:100]).all()
    whole, _, val = readers.load("mnist", tmp_path, val=50)
    assert len(whole.labels) == 250 and (whole.labels.numpy() == labels[:250]).all()


def _corrupt(path: Path, how: str) -> None:
    raw = gzip.decompress(path.read_bytes())
    if how == "magic":
        path.write_bytes(
            gzip.compress(b"\x00\x00\x08\x01" + raw[4:])
        )  # labels' magic on an image file
    elif how == "short":
        path.write_bytes(gzip.compress(raw[:-28]))  # one row of one image missing
    elif how == "long":
        path.write_bytes(gzip.compress(raw + b"\x00"))
    elif how == "not-gzip":
        path.write_bytes(raw)
    elif how == "truncated-gzip":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["magic", "short", "long", "not-gzip", "truncated-gzip", "empty"])
def test_corrupt_idx_is_a_one_line_error_naming_the_file(tmp_path, how):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", synthetic_images(50, 0)[0])
    _corrupt(path, how)
    with pytest.raises(NormlabError) as err:
        readers.read_idx(path, 3)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_images_and_labels_of_different_lengths_are_rejected(tmp_path):
    files = write_dataset(tmp_path, n_train=100, n_test=50)
    write_idx(files["train-labels-idx1-ubyte.gz"], np.zeros(99, np.uint8))
    with pytest.raises(NormlabError, match="100 images but 99 labels"):
        readers.load("mnist", tmp_path)


def test_a_label_beyond_the_classes_or_a_missing_file_is_one_line(tmp_path):
    files = write_dataset(tmp_path, n_train=100, n_test=50)
    labels = np.zeros(50, np.uint8)
    labels[7] = 12
    write_idx(files["t10k-labels-idx1-ubyte.gz"], labels)
    with pytest.raises(NormlabError, match=r"t10k-labels-idx1-ubyte.gz: label 12 out of range"):
        readers.load("mnist", tmp_path)
    files["t10k-labels-idx1-ubyte.gz"].unlink()
    with pytest.raises(NormlabError, match="missing \\(the download stage fetches it\\)"):
        readers.load("mnist", tmp_path)


# --- sources: shipped copy, NORMLAB_DATA_MIRROR, official URL -------------------------------------


@pytest.fixture
def synth(tmp_path, monkeypatch):
    """A dataset 'synth' whose md5s are those of freshly written synthetic files (kept in `good/`),
    whose official host is unreachable, looked up from a cwd with no shipped copy."""
    good = write_dataset(tmp_path / "good", n_train=40, n_test=20)
    spec = specs.Spec(
        files={name: fetch.md5(p) for name, p in good.items()},
        urls=(UNREACHABLE,),
        classes=tuple("0123456789"),
        n_train=40,
    )
    monkeypatch.setitem(specs.SPECS, "synth", spec)
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return good


def _mirror(root: Path, good: dict[str, Path], bad: tuple[str, ...] = ()) -> Path:
    for name, path in good.items():
        dest = root / "synth" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"not the real file" if name in bad else path.read_bytes())
    return root


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.exists() else []


def test_mirror_folder_laid_out_dataset_slash_file_is_used(synth, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.MIRROR_ENV, str(_mirror(tmp_path / "mirror", synth)))
    dest = Path("raw/synth")
    for name, good in synth.items():
        source = fetch.fetch("synth", name, dest / name)
        assert source == str(tmp_path / "mirror" / "synth" / name)
        assert (dest / name).read_bytes() == good.read_bytes()
    assert not _leftovers(dest)


def test_shipped_copy_comes_first(synth, tmp_path, monkeypatch):
    name = IDX_NAMES[1]
    _mirror(Path("data"), synth)  # data/synth/<file> relative to the cwd, as in the repo
    monkeypatch.setenv(fetch.MIRROR_ENV, str(_mirror(tmp_path / "mirror", synth)))
    assert fetch.fetch("synth", name, Path("raw") / name) == str(Path("data/synth") / name)


def test_md5_mismatch_is_discarded_and_the_next_source_tried(synth, tmp_path, monkeypatch):
    name = IDX_NAMES[0]
    _mirror(Path("data"), synth, bad=(name,))  # the shipped copy is damaged
    monkeypatch.setenv(fetch.MIRROR_ENV, str(_mirror(tmp_path / "mirror", synth)))
    dest = Path("raw") / name
    assert fetch.fetch("synth", name, dest) == str(tmp_path / "mirror" / "synth" / name)
    assert dest.read_bytes() == synth[name].read_bytes()
    assert not _leftovers(dest.parent)


def test_a_bad_file_already_in_place_is_replaced(synth, tmp_path, monkeypatch):
    name = IDX_NAMES[2]
    dest = Path("raw") / name
    dest.parent.mkdir()
    dest.write_bytes(synth[name].read_bytes()[:-10])  # a truncated earlier download
    monkeypatch.setenv(fetch.MIRROR_ENV, str(_mirror(tmp_path / "mirror", synth)))
    fetch.fetch("synth", name, dest)
    assert dest.read_bytes() == synth[name].read_bytes()


def test_all_sources_failing_is_one_line_listing_what_was_tried(synth, tmp_path, monkeypatch):
    name = IDX_NAMES[3]
    _mirror(Path("data"), synth, bad=(name,))  # shipped: wrong md5
    mirror = tmp_path / "mirror"
    (mirror / "synth").mkdir(parents=True)  # mirror: file missing; official host: unreachable
    monkeypatch.setenv(fetch.MIRROR_ENV, str(mirror))
    dest = Path("raw") / name
    with pytest.raises(NormlabError) as err:
        fetch.fetch("synth", name, dest)
    message = str(err.value)
    assert "\n" not in message
    assert f"data/synth/{name} (md5" in message
    assert f"{mirror / 'synth' / name} (missing)" in message
    assert f"{UNREACHABLE}{name} (" in message
    assert fetch.MIRROR_ENV in message
    assert not dest.exists() and not _leftovers(dest.parent)


def test_mirror_pointing_at_a_missing_folder_is_a_clear_error(synth, tmp_path, monkeypatch):
    missing = tmp_path / "no-such-mirror"
    monkeypatch.setenv(fetch.MIRROR_ENV, str(missing))
    with pytest.raises(NormlabError, match=f"{fetch.MIRROR_ENV}={missing}: no such folder"):
        fetch.fetch("synth", IDX_NAMES[0], Path("raw") / IDX_NAMES[0])


def test_unknown_dataset_is_a_one_line_error():
    with pytest.raises(NormlabError, match="dataset = 'imagenet'"):
        specs.spec("imagenet")
