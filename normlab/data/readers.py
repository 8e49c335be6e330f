"""A downloaded dataset's verified files → uint8 image tensors and labels, each file's header
and length checked, so a truncated or foreign file is one line naming it, never a wrong tensor.
"""

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from normlab.data.specs import CIFAR_META, CIFAR_RECORD, CIFAR_TEST, CIFAR_TRAIN, IDX_FILES, spec
from normlab.errors import NormlabError


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

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


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


def load(
    dataset: str, root: Path, limit: int = 0, val: int = 0
) -> tuple[Split, Split, Split | None]:
    """Train, test and validation splits of a downloaded dataset.

    `val` > 0 holds out the LAST `val` training images as the validation split (None for 0):
    a fixed subset, the same for every seed, disjoint from whatever `limit` > 0 keeps (the first
    `limit` of the images left). The last, not a random draw, so that it is one slice a reader
    can name and every run and tool cuts alike; the official files are not ordered by class.
    """
    s = spec(dataset)
    if s.format == "cifar":
        train, test = _load_cifar(root, s.classes)
    else:
        train, test = _load_idx(root, len(s.classes))
    held = None
    if val:
        cut = len(train.labels) - val
        held = Split(train.images[cut:], train.labels[cut:])
        train = Split(train.images[:cut], train.labels[:cut])
    if limit:
        train = Split(train.images[:limit], train.labels[:limit])
    return train, test, held
