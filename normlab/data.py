"""Datasets: where the files come from, how they are verified, and how they become tensors.

A file is fetched from the first source that has it with the right md5: the copy shipped in
the repo (`data/<dataset>/`), then `NORMLAB_DATA_MIRROR` (a folder or URL laid out
`<mirror>/<dataset>/<file>`), then the official host. Each copy lands in a temp file and is
renamed only after its md5 matches, so a broken transfer never passes as a good file.
"""

import gzip
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normlab.errors import NormlabError

MIRROR_ENV = "NORMLAB_DATA_MIRROR"
SHIPPED = Path("data")


@dataclass(frozen=True)
class Spec:
    """What a dataset is made of and where its official copy lives."""

    files: dict[str, str]  # file name → md5
    urls: tuple[str, ...]  # official base URLs, tried in order
    classes: tuple[str, ...]
    n_train: int
    channels: int = 1


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

SPECS: dict[str, Spec] = {
    "mnist": Spec(
        files=dict(zip(IDX_FILES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                   "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        classes=tuple(str(d) for d in range(10)),
        n_train=60000,
    ),
    "fashion-mnist": Spec(
        files=dict(zip(IDX_FILES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                   "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        n_train=60000,
    ),
}


def spec(dataset: str) -> Spec:
    if dataset not in SPECS:
        raise NormlabError(f"params.yaml: dataset = {dataset!r}: not available (allowed: {', '.join(SPECS)})")
    return SPECS[dataset]


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sources(dataset: str, name: str) -> list[str]:
    """Every place `name` may come from, best first (folders as paths, hosts as URLs)."""
    sources = [str(SHIPPED / dataset / name)]
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        if "://" in mirror:
            sources.append(f"{mirror.rstrip('/')}/{dataset}/{name}")
        elif not Path(mirror).is_dir():
            raise NormlabError(f"{MIRROR_ENV}={mirror}: no such folder (expected <mirror>/{dataset}/{name})")
        else:
            sources.append(str(Path(mirror) / dataset / name))
    sources += [url + name for url in spec(dataset).urls]
    return sources


def _copy(source: str, tmp: Path) -> None:
    """Copy a folder file or download a URL into `tmp` (pooch: retries, progress bar)."""
    if "://" not in source:
        shutil.copyfile(source, tmp)
        return
    import pooch  # only needed when the network is

    tmp.unlink()  # pooch skips the download when the target already exists
    pooch.retrieve(source, known_hash=None, fname=tmp.name, path=tmp.parent, progressbar=True)


def fetch(dataset: str, name: str, dest: Path) -> str:
    """Put a verified copy of `name` at `dest`; return the source used. One-line error if none works."""
    want = spec(dataset).files[name]
    if dest.exists() and md5(dest) == want:
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tried = []
    for source in _sources(dataset, name):
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if "://" not in source and not Path(source).is_file():
                tried.append(f"{source} (missing)")
                continue
            try:
                _copy(source, tmp)
            except Exception as err:  # any transfer failure: note it, try the next source
                tried.append(f"{source} ({type(err).__name__})")
                continue
            got = md5(tmp)
            if got != want:
                tried.append(f"{source} (md5 {got}, expected {want})")
                continue
            os.replace(tmp, dest)
            return source
        finally:
            tmp.unlink(missing_ok=True)
    raise NormlabError(f"{dataset}/{name}: no source worked; tried: {'; '.join(tried)}. "
                       f"Set {MIRROR_ENV} to a folder or URL laid out <mirror>/{dataset}/{name}")


def read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Read a gzipped IDX file (unsigned bytes) into an array, checking its header and length."""
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError) as err:
        raise NormlabError(f"{path}: not a readable gzip file ({err})") from None
    magic = 0x800 + expect_dims
    if len(raw) < 4 + 4 * expect_dims or int.from_bytes(raw[:4], "big") != magic:
        raise NormlabError(f"{path}: not an IDX file of {expect_dims}-d unsigned bytes (magic {magic:#010x} expected)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(expect_dims)]
    body = raw[4 + 4 * expect_dims:]
    if len(body) != int(np.prod(dims)):
        raise NormlabError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


@dataclass
class Split:
    """Images as uint8 N×C×H×W (kept small; normalised per batch on the device) and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor


def load(dataset: str, root: Path, limit: int = 0) -> tuple[Split, Split]:
    """Train and test splits of a downloaded dataset; `limit` > 0 keeps the first N training images."""
    spec(dataset)
    names = IDX_FILES
    arrays = [read_idx(root / name, 3 if "images" in name else 1) for name in names]
    for images, labels, name in ((arrays[0], arrays[1], names[0]), (arrays[2], arrays[3], names[2])):
        if len(images) != len(labels):
            raise NormlabError(f"{root / name}: {len(images)} images but {len(labels)} labels")
    train = Split(torch.from_numpy(arrays[0].copy()).unsqueeze(1), torch.from_numpy(arrays[1].astype(np.int64)))
    test = Split(torch.from_numpy(arrays[2].copy()).unsqueeze(1), torch.from_numpy(arrays[3].astype(np.int64)))
    if limit:
        train = Split(train.images[:limit], train.labels[:limit])
    return train, test
