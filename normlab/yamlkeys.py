"""YAML as params.yaml and studies/ are read: a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a second `norm:` further down a
file would silently win over the first one a reader sees.
"""

from typing import Any

import yaml


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


def load(text: str) -> Any:
    """yaml.safe_load, but a duplicate key raises a yaml.YAMLError that names it and its line."""
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 — a SafeLoader subclass
