"""Reading YAML/JSON manifest text: data plus the line of every node, for errors that name the line.

PyYAML follows YAML 1.1, where `no:` is false, `1:30` is 90 and `01:00:04:12` is an integer in base
60. In a manifest `no` is Norwegian and those are timecodes, so the loader here resolves only
null, true/false and plain decimal numbers; everything else stays text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


# libyaml's parser when present: the pure-Python one takes ~15 s per pass over a 1.5 MB manifest.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2-like scalars (no yes/no booleans, no base-60 numbers, no dates)."""


ManifestLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx) for tag, rx in resolvers if tag in ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+)$"),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)))  # decimal only: "010" is 10, not octal 8


ManifestLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class ManifestSyntaxError(ValueError):
    """The text is not valid YAML/JSON; `line` (1-based) says where."""

    def __init__(self, message: str, line: int | None, fix: str) -> None:
        self.line = line
        self.fix = fix
        super().__init__(message)


@dataclass
class SourceMap:
    """The line (1-based) of each node, by its path of keys and indexes; duplicate keys found on the way."""

    lines: dict[PathKey, int] = field(default_factory=dict)
    duplicates: list[tuple[PathKey, int]] = field(default_factory=list)

    def line_of(self, path: PathKey) -> int | None:
        """The line of `path`, or of its nearest ancestor present in the text (for a missing key)."""
        for cut in range(len(path), -1, -1):
            found = self.lines.get(path[:cut])
            if found is not None:
                return found
        return None


def _walk(node: yaml.Node, path: PathKey, out: SourceMap) -> None:
    out.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                out.duplicates.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            out.lines.setdefault((*path, key), key_node.start_mark.line + 1)
            _walk(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), out)


def source_map(text: str) -> SourceMap:
    """Lines of every node of YAML (or JSON) text; empty when the text does not compose."""
    out = SourceMap()
    try:
        root = yaml.compose(text, Loader=ManifestLoader)
    except yaml.YAMLError:
        return out
    if root is not None:
        _walk(root, (), out)
    return out


def parse_text(text: str, *, is_json: bool) -> Any:
    """The data of a manifest's text; ManifestSyntaxError with the line on bad syntax."""
    if is_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestSyntaxError(
                f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                exc.lineno,
                "fix the JSON syntax at that place (a missing comma, quote or bracket?)",
            ) from None
    try:
        return yaml.load(text, Loader=ManifestLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        where = f" (line {line}, column {mark.column + 1})" if mark else ""
        opened = exc.context_mark
        if opened is not None and mark is not None and opened.line != mark.line:
            where += f"; the construct began at line {opened.line + 1}"
        raise ManifestSyntaxError(
            f"invalid YAML: {what}{where}",
            line,
            "fix the YAML syntax at that place (indentation, a missing colon, an unclosed quote or bracket?)",
        ) from None
    except yaml.YAMLError as exc:
        raise ManifestSyntaxError(f"invalid YAML: {exc}", None, "fix the YAML syntax") from None


def lookup(data: Any, path: PathKey) -> Any:
    """The value at `path` in parsed data, or None."""
    node = data
    for part in path:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            return None
        node = node[part]
    return node
