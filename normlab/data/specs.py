"""Datasets: what each is made of (files and their md5s, classes, sizes) and where its
official copy lives. Data only, no torch: a plan or a check of params reads it cheaply.

MNIST and Fashion-MNIST are gzipped IDX files; CIFAR-10 is the official *binary* archive's
batches (no unpickling of downloaded data). `cifar10-proxy` is a separate dataset name for the
offline JPEG proxy: it has no published md5 and says "PROXY" wherever its results appear, so
a `cifar10` run can never use it. Getting the files is normlab.data.fetch's job, reading them
normlab.data.readers'.
"""

from dataclasses import dataclass

from normlab.errors import InputError


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
