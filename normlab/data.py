"""Datasets: what each is made of, and how its verified files become tensors.

MNIST and Fashion-MNIST are gzipped IDX files; CIFAR-10 is the official *binary* archive's
batches (no unpickling of downloaded data). `cifar10-proxy` is a separate dataset name for the
offline JPEG proxy: it has no published md5 and says "PROXY" wherever its results appear, so
a `cifar10` run can never use it. Getting the files is normlab.fetch's job.
"""

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normlab.errors import InputError, NormlabError


@dataclass(frozen=True)
class Spec:
    """What a dataset is made of and where its official copy lives."""

    files: dict[str, str | None]  # file name → md5 (None: no published checksum; the proxy only)
    urls: tuple[str, ...]  # official base URLs, tried in order
    classes: tuple[str, ...]
    n_train: int
    channels: int = 1
    format: str = (
        "idx"  # idx: four gzipped IDX files | cifar: binary batches unpacked from one tar.gz
    )
    note: str = ""  # shown with every result of this dataset (the proxy says it is not CIFAR-10)

    @property
    def size(self) -> int:
        """Side of its square images in pixels."""
        return 32 if self.format == "cifar" else 28


CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR_DIR = "cifar-10-batches-bin"  # the one folder inside the official archive
CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_TEST = "test_batch.bin"
CIFAR_META = "batches.meta.txt"  # class names, one per line
CIFAR_MEMBERS = (*CIFAR_TRAIN, CIFAR_TEST, CIFAR_META)  # what is unpacked
CIFAR_ALLOWED = {
    f"{CIFAR_DIR}/{name}" for name in (*CIFAR_MEMBERS, "readme.html")
}  # may be in the archive
CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte + 1024 R, 1024 G, 1024 B pixel bytes

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

SPECS: dict[str, Spec] = {
    "mnist": Spec(
        files=dict(
            zip(
                IDX_FILES,
                (
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "9fb629c4189551a2d022fa330f9573f3",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                ),
                strict=False,
            )
        ),
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        classes=tuple(str(d) for d in range(10)),
        n_train=60000,
    ),
    "fashion-mnist": Spec(
        files=dict(
            zip(
                IDX_FILES,
                (
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "bef4ecab320f06d8554ea6380940ec79",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                ),
                strict=False,
            )
        ),
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        n_train=60000,
    ),
    "cifar10": Spec(
        files={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        urls=("https://www.cs.toronto.edu/~kriz/",),
        classes=CIFAR_CLASSES,
        n_train=50000,
        channels=3,
        format="cifar",
    ),
    "cifar10-proxy": Spec(
        files={"cifar-10-binary-proxy.tar.gz": None},
        urls=(),  # built locally by `make proxy` (../shared/datasets/cifar-10-proxy/build.py)
        classes=CIFAR_CLASSES,
        n_train=50000,
        channels=3,
        format="cifar",
        note="PROXY, not CIFAR-10: JPEG copies of its images",
    ),
}


def spec(dataset: str) -> Spec:
    if dataset not in SPECS:
        raise InputError(
            "params.yaml", f"dataset = {dataset!r}: not available (allowed: {', '.join(SPECS)})"
        )
    return SPECS[dataset]


def describe(dataset: str) -> str:
    """The dataset's name as results show it: with its note, so a proxy is never taken for
    the real one."""
    note = spec(dataset).note
    return f"{dataset} ({note})" if note else dataset


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_idx(path: Path, expect_dims: int) -> np.ndarray:
    """Read a gzipped IDX file (unsigned bytes) into an array, checking its header and length."""
    try:
        raw = gzip.decompress(Path(path).read_bytes())
    except FileNotFoundError:
        raise NormlabError(f"{path}: missing (the download stage fetches it)") from None
    except (OSError, EOFError) as err:
        raise NormlabError(f"{path}: not a readable gzip file ({err})") from None
    magic = 0x800 + expect_dims
    if len(raw) < 4 + 4 * expect_dims or int.from_bytes(raw[:4], "big") != magic:
        raise NormlabError(
            f"{path}: not an IDX file of {expect_dims}-d unsigned bytes "
            f"(magic {magic:#010x} expected)"
        )
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expect_dims)]
    body = raw[4 + 4 * expect_dims :]
    if len(body) != int(np.prod(dims)):
        raise NormlabError(
            f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file has {len(body)}"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def read_cifar_batch(path: Path, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch → uint8 images N×3×32×32 and labels, checking the record length."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise NormlabError(
            f"{path}: cannot be read ({err.strerror}); run the download stage"
        ) from None
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise NormlabError(
            f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte "
            f"CIFAR-10 records (1 label byte + 3072 pixel bytes)"
        )
    records = raw.reshape(-1, CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() >= classes:
        raise NormlabError(f"{path}: label {labels.max()} out of range (0..{classes - 1})")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def read_classes(path: Path) -> tuple[str, ...]:
    """Class names from batches.meta.txt: one per line, blank lines ignored."""
    try:
        return tuple(line.strip() for line in Path(path).read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError) as err:
        raise NormlabError(f"{path}: cannot be read as text ({err})") from None


@dataclass
class Split:
    """Images as uint8 N×C×H×W (kept small; normalised per batch on the device) and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
    """Own, writable copies: the arrays may be read-only views of a file's bytes."""
    return Split(
        torch.from_numpy(np.array(images, order="C")), torch.from_numpy(labels.astype(np.int64))
    )


def _load_idx(root: Path, classes: int) -> tuple[Split, Split]:
    names = IDX_FILES
    arrays = [read_idx(root / name, 3 if "images" in name else 1) for name in names]
    for first in (0, 2):  # train, test: images then labels
        images, labels, labels_file = arrays[first], arrays[first + 1], root / names[first + 1]
        if len(images) != len(labels):
            raise NormlabError(
                f"{root / names[first]}: {len(images)} images but {len(labels)} labels"
            )
        if labels.size and labels.max() >= classes:
            top = labels.max()
            raise NormlabError(f"{labels_file}: label {top} out of range (0..{classes - 1})")
    return _split(arrays[0][:, None], arrays[1]), _split(arrays[2][:, None], arrays[3])


def _load_cifar(root: Path, classes: tuple[str, ...]) -> tuple[Split, Split]:
    """The five training batches and the test batch; the class names must be the spec's."""
    found = read_classes(root / CIFAR_META)
    if found != classes:
        raise NormlabError(
            f"{root / CIFAR_META}: class names {list(found)} differ from {list(classes)}"
        )
    batches = [read_cifar_batch(root / name, len(classes)) for name in CIFAR_TRAIN]
    train = _split(np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    return train, _split(*read_cifar_batch(root / CIFAR_TEST, len(classes)))


def load(dataset: str, root: Path, limit: int = 0) -> tuple[Split, Split]:
    """Train and test splits of a downloaded dataset; `limit` > 0 keeps the first N training
    images."""
    s = spec(dataset)
    if s.format == "cifar":
        train, test = _load_cifar(root, s.classes)
    else:
        train, test = _load_idx(root, len(s.classes))
    if limit:
        train = Split(train.images[:limit], train.labels[:limit])
    return train, test
