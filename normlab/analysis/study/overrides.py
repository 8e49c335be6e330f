"""Params overrides as studies and `--set` give them: dotted keys (`train.epochs`) applied to
params.yaml the way `dvc exp run -S` applies them, values read as YAML 1.2 reads them.

A study starts from HEAD's params.yaml and recipes.yaml, not the workspace's: `dvc exp run -S`
leaves the workspace copy of params.yaml modified.
"""

import copy
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from normlab import paths, yamlfile
from normlab.errors import NormlabError

SEED_KEY_HELP = "a run's seed comes from `seeds:` (or `variant_seeds:`; --seed picks some)"


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`key=value` strings (as `-S` takes them) → overrides, values parsed as YAML.

    Only true/false are booleans (YAML 1.2): `--set engine.amp=off` means the string 'off',
    as the key's allowed values say, not YAML 1.1's false."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NormlabError(f"--set {item!r}: expected key=value, e.g. --set device=cuda")
        if key == "seed":
            raise NormlabError(f"--set {item!r}: {SEED_KEY_HELP}")
        overrides[key] = _yaml_value(item, value.strip())
    return overrides


def _yaml_value(item: str, value: str) -> Any:
    """A --set value as YAML 1.2 reads it: PyYAML (YAML 1.1) would read 'off' as false, '010'
    as 8 (octal) and '1:30' as 90 (base 60)."""
    if re.fullmatch(r"[-+]?[0-9]+", value):
        return int(value, 10)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise NormlabError(f"--set {item!r}: not a YAML value ({exc.__class__.__name__})") from None
    if isinstance(parsed, bool) and value.lower() not in ("true", "false"):
        return value
    if isinstance(parsed, int | float) and ":" in value:
        return value
    return parsed


def apply(raw: dict, overrides: dict[str, Any]) -> dict:
    """params.yaml mapping with dotted-key overrides applied, as `dvc exp run -S` would."""
    out = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise NormlabError(
                    f"override {key}={value!r}: '{part}' is not a section of params.yaml"
                )
        if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
            first = next(iter(node[leaf]), "key")
            raise NormlabError(
                f"override {key}={value!r}: '{key}' is a section of params.yaml: set its keys, "
                f"e.g. {key}.{first}=…"
            )
        node[leaf] = value
    return out


@dataclass(frozen=True)
class Base:
    """What every run of a study starts from: params.yaml (which the overrides change) and
    recipes.yaml (each dataset's recipe, which `train.<key>` overrides change)."""

    params: dict[str, Any]
    recipes: dict[str, Any]


def _committed(repo: Path, path: Path, keys: str) -> dict:
    """A YAML file as committed at HEAD, as a mapping; any problem is one line naming it."""
    proc = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NormlabError(
            f"{path}: not committed at HEAD (studies start from the committed "
            f"params and recipes; git says: {proc.stderr.strip().splitlines()[-1:]})"
        )
    source = f"HEAD:{path}"
    return yamlfile.mapping(yamlfile.parse(proc.stdout, source), source, keys)


def base_params(repo: Path = Path(".")) -> Base:
    """params.yaml and recipes.yaml as committed at HEAD: the workspace copy of params.yaml may
    hold a `dvc exp run -S` change."""
    return Base(
        _committed(repo, paths.PARAMS, "keys such as 'norm'"),
        _committed(repo, paths.RECIPES, "a recipe per dataset, e.g. 'mnist'"),
    )
