"""YAML that remembers where each value was written, so schema errors can name the line.

``load_marked(text, source)`` returns plain-looking dicts and lists (``MarkedMap``,
``MarkedList``) that carry the line of every key and item; ``Where`` walks them and raises
``SchemaError("suite.yaml:12: envs[0].seeds: ...")``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml


class SchemaError(ValueError):
    """A file that does not follow its schema: the message names the file, line and key."""


class MarkedMap(dict):
    """A mapping with the line (1-based) of each key, and of the mapping itself."""

    line: int = 0
    key_lines: dict[Any, int]


class MarkedList(list):
    """A sequence with the line (1-based) of each item, and of the sequence itself."""

    line: int = 0
    item_lines: list[int]


def load_marked(text: str, source: str) -> Any:
    """Parse YAML (safe tags only); duplicate keys are errors, not silent overwrites."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _convert(node, loader, source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise SchemaError(f"{source}{line}: not valid YAML: {err.problem or err}") from None
    finally:
        loader.dispose()


def _convert(node: yaml.Node, loader: yaml.SafeLoader, source: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # merge keys (<<: *anchor)
        result = MarkedMap()
        result.line, result.key_lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in result:
                raise SchemaError(
                    f"{source}:{line}: duplicate key {key!r} (first at line {result.key_lines[key]})"
                )
            result[key] = _convert(value_node, loader, source)
            result.key_lines[key] = line
        return result
    if isinstance(node, yaml.SequenceNode):
        items = MarkedList(_convert(item, loader, source) for item in node.value)
        items.line, items.item_lines = node.start_mark.line + 1, [n.start_mark.line + 1 for n in node.value]
        return items
    return loader.construct_object(node, deep=True)


class Where:
    """A position in a marked document (file, key path, line) for reading values with checks."""

    def __init__(self, source: str, path: str = "", line: int = 0) -> None:
        self.source, self.path, self.line = source, path, line

    @property
    def at(self) -> str:
        """``file:line: key.path`` (the prefix of this position's errors)."""
        place = f"{self.source}:{self.line}" if self.line else self.source
        return f"{place}: {self.path}" if self.path else place

    def error(self, message: str) -> SchemaError:
        return SchemaError(f"{self.at}: {message}")

    def key(self, mapping: MarkedMap, key: str) -> Where:
        path = f"{self.path}.{key}" if self.path else key
        return Where(self.source, path, getattr(mapping, "key_lines", {}).get(key, self.line))

    def item(self, items: MarkedList, index: int) -> Where:
        lines = getattr(items, "item_lines", [])
        return Where(self.source, f"{self.path}[{index}]", lines[index] if index < len(lines) else self.line)

    def mapping(self, value: Any, allowed: Iterable[str], required: Iterable[str] = ()) -> MarkedMap:
        """``value`` as a mapping with only ``allowed`` keys and every ``required`` one."""
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping, got {_kind(value)}")
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.key(value, key).error(
                    f"unknown key {key!r}; {hint}allowed keys: {', '.join(allowed)}"
                )
        for key in required:
            if key not in value:
                raise self.error(f"missing required key {key!r}")
        return value

    def sequence(self, value: Any) -> MarkedList:
        if not isinstance(value, list):
            raise self.error(f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"expected a non-empty string, got {_kind(value)}")
        return value.strip()

    def integer(self, value: Any, low: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise self.error(f"expected an integer, got {_kind(value)}")
        if low is not None and value < low:
            raise self.error(f"must be >= {low}, got {int(value)}")
        return int(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
