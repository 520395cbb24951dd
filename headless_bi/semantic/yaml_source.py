"""YAML reading that remembers where every mapping and key came from.

Model errors must name file and line; PyYAML's composed nodes carry marks, so we build plain dicts
and lists from them and keep the lines on a dict subclass.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from headless_bi.errors import ModelIssue


class LocatedDict(dict):
    """A mapping from YAML with the line of itself and of each key (1-based)."""

    file: str
    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    file: str
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Loader(yaml.SafeLoader):
    pass


def _construct(node: yaml.Node, file: str, loader: _Loader) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out = LocatedDict()
        out.file, out.line, out.key_lines = file, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, str) else key
            out[key] = _construct(value_node, file, loader)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        items = LocatedList(_construct(child, file, loader) for child in node.value)
        items.file, items.line = file, node.start_mark.line + 1
        items.item_lines = [child.start_mark.line + 1 for child in node.value]
        return items
    return loader.construct_object(node, deep=True)


def read_yaml(path: Path | str, text: str | None = None) -> tuple[Any, list[ModelIssue]]:
    """Parse one YAML file; syntax errors come back as located issues, never as exceptions."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            return None, [ModelIssue(file, None, None, f"cannot read file: {exc.strerror}")]
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        return _construct(node, file, loader), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        return None, [ModelIssue(file, line, None, f"invalid YAML: {exc.problem or exc}")]
    except yaml.YAMLError as exc:
        return None, [ModelIssue(file, None, None, f"invalid YAML: {exc}")]
    finally:
        loader.dispose()


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_CAMEL_VALUES = {"type": {"countDistinct": "count_distinct", "countDistinctApprox": "count_distinct_approx"}}


def snake_case_keys(node: Any, *, inside_meta: bool = False) -> Any:
    """Cube's YAML accepts camelCase keys (`sqlTable`, `primaryKey`); rename them to snake_case.

    `meta` is free-form, so nothing under it is renamed. Line information is kept.
    """
    if isinstance(node, LocatedDict):
        out = LocatedDict()
        out.file, out.line, out.key_lines = node.file, node.line, {}
        for key, value in node.items():
            new = key if inside_meta else _CAMEL.sub(lambda m: "_" + m.group(1).lower(), key)
            value = snake_case_keys(value, inside_meta=inside_meta or new == "meta")
            if not inside_meta and isinstance(value, str):
                value = _CAMEL_VALUES.get(new, {}).get(value, value)
            out[new] = value
            out.key_lines[new] = node.line_of(key)
        return out
    if isinstance(node, LocatedList):
        items = LocatedList(snake_case_keys(v, inside_meta=inside_meta) for v in node)
        items.file, items.line, items.item_lines = node.file, node.line, node.item_lines
        return items
    return node


def line_at(root: Any, path: tuple[Any, ...]) -> int | None:
    """The line of the deepest located node on `path` (a cerberus document path)."""
    line = getattr(root, "line", None)
    node = root
    for step in path:
        in_dict = isinstance(node, LocatedDict) and step in node
        in_list = isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node)
        if in_dict or in_list:
            line = node.line_of(step)
            node = node[step]
        else:
            break
    return line
