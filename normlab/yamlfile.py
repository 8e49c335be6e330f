"""YAML as normlab reads it (params.yaml, recipes.yaml, the files of studies/): a key given
twice in one mapping is an error, and any problem with a file is one line naming it.

The one place that does both, so every file a user edits fails the same way. PyYAML keeps
the last of two equal keys without a word, so a second `norm:` further down a file would
silently win over the first one a reader sees.
"""

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from normlab.errors import NormlabError


class _UniqueKeys(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"found the key {key!r} twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse(text: str, source: str | Path) -> Any:
    """yaml.safe_load, but a key given twice is an error too; any error is one NormlabError
    line: '<source>: line N: not valid YAML (<what PyYAML found>)'."""
    try:
        return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 — a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise NormlabError(f"{source}:{where} not valid YAML ({problem})") from None


def read(path: str | Path, what: str, hint: str = "") -> Any:
    """The parsed content of the YAML file at `path` (a `what`, e.g. "study file"); a file that
    is missing, unreadable or not YAML is one line naming it (`hint` follows 'not found')."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NormlabError(f"{path}: {what} not found{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NormlabError(f"{path}: cannot be read as text ({exc.__class__.__name__})") from None
    return parse(text, path)


def mapping(raw: Any, source: str | Path, keys: str) -> dict:
    """`raw` if it is a mapping, as every file's top level must be; otherwise one line saying
    what it should hold (`keys`, e.g. "key 'studies'"), and that the file is empty if it is
    (pydantic would say "Input should be a valid dictionary or instance of StudyFile")."""
    if not isinstance(raw, dict):
        empty = " (the file is empty)" if raw is None else ""
        raise NormlabError(f"{source}: expected a mapping with {keys} at the top level{empty}")
    return raw


def first_error(exc: ValidationError) -> dict:
    """Of pydantic's errors for a file, the one to report: an unknown key explains the
    "missing" one that usually comes with it (a typo)."""
    return min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
