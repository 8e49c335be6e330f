"""Reading the YAML files of studies/ (study files, the claims file): any problem with a file
is one line naming it, and of pydantic's errors the one that explains the others."""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from normlab import yamlkeys
from normlab.errors import NormlabError


def read(path: Path, what: str) -> Any:
    """The file's content; a missing file or one that is not YAML is a one-line error."""
    try:
        return yamlkeys.load(Path(path).read_text())
    except FileNotFoundError:
        raise NormlabError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NormlabError(f"{path}: cannot be read as text ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise NormlabError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def first_error(exc: ValidationError) -> dict:
    """The error to report: an unknown key explains the "missing" one that usually comes with
    it (a typo)."""
    return min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
