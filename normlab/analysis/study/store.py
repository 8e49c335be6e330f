"""Run records on disk: where a run's record (and divergence record, and misclassified images)
goes under results/, and reading and writing them, atomically.

A record is s<seed>.json in results/<…>/runs/<study>/<variant>/; reading checks it against the
schema (normlab.analysis.study.records) and its file name, so a record copied to the wrong seed
never stands for a run that was not trained.
"""

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from normlab.analysis.study.records import Diverged, Record, validate
from normlab.errors import NormlabError
from normlab.io import atomic_path, write_json

RECORD_NAME = re.compile(r"^s(\d+)\.json$")  # s<seed>.json; sidecars, other files: no records
DIVERGED_NAME = re.compile(r"^s(\d+)\.diverged\.json$")  # s<seed>.diverged.json, see Diverged


def read(path: Path, model: type = Record) -> Any:
    """Read and validate one record file (a Record, or a Diverged with `model=Diverged`)."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: record not found") from None
    except OSError as err:  # a folder named s0.json, no permission to read it
        raise NormlabError(f"{path}: cannot read the record ({err.strerror})") from None
    except (ValueError, RecursionError) as err:  # not JSON, not UTF-8, a 5000-digit number …
        raise NormlabError(f"{path}: not a JSON record ({err})") from None
    record = validate(raw, path, model)
    _named_for_its_seed(Path(path), record)
    record._source = Path(path)
    return record


def _named_for_its_seed(path: Path, record: Any) -> None:
    """A plan looks for seed N's record at s<N>.json: a record of another seed there would
    stand for a run that was never trained."""
    named = RECORD_NAME.match(path.name) or DIVERGED_NAME.match(path.name)
    if named and int(named[1]) != record.seed:
        raise NormlabError(
            f"{path}: key 'seed': {record.seed}, but the file is named for seed {named[1]} "
            f"(allowed: seed {named[1]} in {path.name})"
        )


def read_all(root: Path) -> list[Record]:
    """Every record (s<seed>.json) under `root`, in path order; none if `root` does not exist."""
    return [read(p) for p in sorted(Path(root).rglob("s*.json")) if RECORD_NAME.match(p.name)]


def diverged_path(path: Path) -> Path:
    """Where the divergence record of the run whose record would be `path` goes."""
    return Path(path).with_name(f"{Path(path).stem}.diverged.json")


def read_diverged(root: Path) -> list[Diverged]:
    """Every divergence record (s<seed>.diverged.json) under `root`, in path order."""
    found = sorted(Path(root).rglob("s*.diverged.json"))
    return [read(p, Diverged) for p in found if DIVERGED_NAME.match(p.name)]


def sidecar(path: Path) -> Path:
    """Where the misclassified test images of a record of a dataset not in the repo live."""
    return Path(path).with_name(f"{Path(path).stem}.misclassified.npy")


# Fields records gained after schema 1's first records: left out of the file while unknown, so an
# old record reads and writes back byte for byte.
_LATER_OPTIONAL = ("started", "ended", "code_at_end", "val")


def _dump(record: Record | Diverged) -> dict:
    dumped = record.model_dump(mode="json", by_alias=True)
    return {k: v for k, v in dumped.items() if not (k in _LATER_OPTIONAL and v is None)}


def write(path: Path, record: Record, images: np.ndarray | None = None) -> list[Path]:
    """Write a record (and its misclassified images, if given) atomically; return the paths.

    The images go first, so a record on disk always has its sidecar beside it."""
    written = []
    if images is not None:
        with atomic_path(sidecar(path)) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(images, dtype=np.uint8))
        written.append(sidecar(path))
    write_json(path, _dump(record))
    return [*written, Path(path)]


def write_diverged(path: Path, diverged: Diverged) -> Path:
    """Write a divergence record atomically; return its path."""
    write_json(path, _dump(diverged))
    return Path(path)
