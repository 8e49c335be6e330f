"""Reading the YAML files of studies/ (study files, the claims file): any problem with a file
is one line naming it, and of pydantic's errors the one that explains the others."""

from pathlib import Path

import yaml
from pydantic import ValidationError

from normlab import yamlkeys
from normlab.errors import NormlabError


def read(path: Path, what: str, keys: str) -> dict:
    """The file's content, a mapping with `keys` (as a message names them, e.g. "key 'claims'");
    a missing file, one that is not YAML, empty or no mapping is a one-line error (pydantic
    would say "Input should be a valid dictionary or instance of ClaimsFile")."""
    try:
        raw = yamlkeys.load(Path(path).read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NormlabError(f"{path}: cannot be read as text ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise NormlabError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        empty = " (the file is empty)" if raw is None else ""
        raise NormlabError(f"{path}: expected a mapping with {keys} at the top level{empty}")
    return raw


def first_error(exc: ValidationError) -> dict:
    """The error to report: an unknown key explains the "missing" one that usually comes with
    it (a typo)."""
    return min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
