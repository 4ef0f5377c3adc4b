"""Limits a manifest must keep before it is parsed: size, nesting, alias expansion, number length.

Without them a hostile (or broken) manifest ends badly: a YAML alias bomb ("billion laughs")
grows the process by gigabytes, deep nesting ends in RecursionError, a 5,000-digit integer in a
ValueError, a 50 MB file in minutes of parsing. Here the text is scanned once, as a stream of
YAML events (libyaml when present) or JSON tokens, without building anything: nothing it holds
grows with the expansion, and every refusal names the limit and the line.

The limits are `ManifestLimits`; the size limit can also be set with the environment variable
PREFECT_LIPSYNC_MANIFEST_MAX_BYTES.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import yaml

from prefect_lipsync.safe_json import JSONLimitError, check_json_text

MAX_BYTES_ENV = "PREFECT_LIPSYNC_MANIFEST_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024

_PlainNumber = re.compile(r"[-+]?(?:[0-9][0-9_]*)?\.?[0-9][0-9_.eE+-]*")
_Parser: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _env_max_bytes() -> int:
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class ManifestLimits:
    """What a manifest file may be; generous for real manifests (a feature film, many languages)."""

    #: The file's size in bytes (default 4 MiB, or PREFECT_LIPSYNC_MANIFEST_MAX_BYTES).
    max_bytes: int = DEFAULT_MAX_BYTES
    #: Mappings and lists inside each other (a real manifest uses 5).
    max_depth: int = 32
    #: Values (keys, scalars, mappings, lists; aliases expanded) in all: parsing costs memory and
    #: time per value (a 1,500-line, 10-language manifest holds about 330,000).
    max_nodes: int = 600_000
    #: Nodes that YAML aliases (*name) add when expanded; anchors are for sharing a few settings.
    max_alias_nodes: int = 10_000
    #: Characters of one number (a time such as 3725.125 has 8).
    max_number_chars: int = 40

    @classmethod
    def from_env(cls) -> ManifestLimits:
        return cls(max_bytes=_env_max_bytes())


class LimitError(ValueError):
    """The manifest breaks a limit: `message` says which, `line` (1-based) where, `fix` what to do."""

    def __init__(self, message: str, line: int | None, fix: str) -> None:
        self.line = line
        self.fix = fix
        super().__init__(message)


def read_limited(path: str | os.PathLike[str], limits: ManifestLimits) -> bytes:
    """The file's bytes, refused (LimitError) without reading more than the limit."""
    parts: list[bytes] = []
    size = 0
    with open(path, "rb") as handle:
        # In pieces: read(limit + 1) would allocate the whole limit even for a small file.
        while size <= limits.max_bytes:
            part = handle.read(min(1 << 20, limits.max_bytes + 1 - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    data = b"".join(parts)
    if len(data) > limits.max_bytes:
        raise LimitError(
            f"the manifest is larger than the limit of {limits.max_bytes} bytes",
            None,
            f"split it into several manifests, or raise the limit ({MAX_BYTES_ENV})",
        )
    return data


def check_text(text: str, *, is_json: bool, limits: ManifestLimits) -> None:
    """Raise LimitError when the manifest text nests too deep, expands too far or has a huge number.

    Syntax errors are left to the real parser (its message is better): this scan stops quietly.
    """
    if is_json:
        try:
            check_json_text(
                text,
                max_depth=limits.max_depth,
                max_number_chars=limits.max_number_chars,
                max_values=limits.max_nodes,
            )
        except JSONLimitError as exc:
            raise LimitError(str(exc), exc.line, _fix_for(str(exc))) from None
        return
    _check_yaml(text, limits)


def _fix_for(message: str) -> str:
    if "nesting" in message:
        return "a manifest nests a few levels deep: check the brackets and indentation"
    if "values" in message:
        return "split it into several manifests (one per language, say)"
    return "write times and numbers with a few digits (quote a long text to keep it text)"


@dataclass
class _Open:
    """A mapping or list being scanned: its anchor, how many nodes it holds, how deep it goes."""

    anchor: str | None
    nodes: int = 1
    depth: int = 1


def _too_deep(limits: ManifestLimits, line: int | None, *, alias: bool = False) -> LimitError:
    how = " (aliases expanded)" if alias else ""
    return LimitError(
        f"nesting is deeper than the limit of {limits.max_depth} levels{how}",
        line,
        "a manifest nests a few levels deep: check the indentation, brackets and aliases",
    )


def _check_yaml(text: str, limits: ManifestLimits) -> None:
    # Per anchor: (nodes, depth) of the node it names, once that node is complete.
    anchors: dict[str, tuple[int, int]] = {}
    stack: list[_Open] = []
    alias_nodes = 0
    total = 0

    def child(nodes: int, depth: int) -> None:
        if stack:
            stack[-1].nodes += nodes
            stack[-1].depth = max(stack[-1].depth, depth + 1)

    try:
        for event in yaml.parse(text, Loader=_Parser):
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            if isinstance(event, yaml.NodeEvent):  # a scalar, an alias, a mapping or a list begins
                expanded = anchors.get(event.anchor or "") if isinstance(event, yaml.AliasEvent) else None
                total += expanded[0] if expanded else 1
                if total > limits.max_nodes:
                    raise LimitError(
                        f"it holds more than the limit of {limits.max_nodes} values (aliases expanded)",
                        line,
                        "split it into several manifests (one per language, say)",
                    )
            if isinstance(event, yaml.ScalarEvent):
                value = event.value
                if (
                    not event.style  # plain: None in PyYAML, "" in libyaml
                    and len(value) > limits.max_number_chars
                    and _PlainNumber.fullmatch(value)
                ):
                    raise LimitError(
                        f"a number of {len(value)} characters is longer than the limit of"
                        f" {limits.max_number_chars}",
                        line,
                        "write times and numbers with a few digits (quote it to keep it as text)",
                    )
                if event.anchor is not None:
                    anchors[event.anchor] = (1, 0)
                child(1, 0)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    if any(o.anchor == event.anchor for o in stack):
                        raise LimitError(
                            f"alias *{event.anchor} refers to a node that contains it (a loop)",
                            line,
                            "an alias may only repeat a node defined before it, not one around it",
                        )
                    continue  # an undefined alias: the parser reports it with its line
                nodes, depth = anchors[event.anchor]
                alias_nodes += nodes
                if alias_nodes > limits.max_alias_nodes:
                    raise LimitError(
                        f"aliases expand to more than the limit of {limits.max_alias_nodes} nodes"
                        " (an alias bomb?)",
                        line,
                        "use anchors and aliases (&name, *name) only to share a few settings",
                    )
                if len(stack) + depth > limits.max_depth:
                    raise _too_deep(limits, line, alias=True)
                child(nodes, depth)
            elif isinstance(event, yaml.CollectionStartEvent):
                stack.append(_Open(event.anchor))
                if len(stack) > limits.max_depth:
                    raise _too_deep(limits, line)
            elif isinstance(event, yaml.CollectionEndEvent):
                done = stack.pop()
                if done.anchor is not None:
                    anchors[done.anchor] = (done.nodes, done.depth)
                child(done.nodes, done.depth)
    except yaml.YAMLError:
        return  # bad syntax: the real parser says where and why
