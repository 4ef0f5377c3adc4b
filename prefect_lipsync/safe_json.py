"""JSON from strangers, parsed within limits: nesting depth, number length, only real numbers and text.

Python's `json` recurses once per nesting level (a deep body ends in RecursionError), turns a
5,000-digit integer into a ValueError, `1e400` into infinity, and `"\\ud800"` into a string that
cannot be written out again. `loads` refuses each with a `JSONLimitError` (a ValueError) that says
which limit was broken and where, before any of it can go wrong further on.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_NUMBER_CHARS = 40

# One pass over the text: whole strings (skipped), brackets (counted), numbers (measured).
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|-?[0-9][0-9.eE+-]*')


class JSONLimitError(ValueError):
    """JSON text that breaks a limit, or is not JSON; `line` (1-based) says where, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def check_json_text(
    text: str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
    max_values: int | None = None,
) -> None:
    """Raise JSONLimitError when `text` nests deeper than `max_depth`, has an over-long number, or
    (with `max_values`) holds more strings, numbers, objects and arrays than that.

    Linear in the text and without recursion, so it is safe on any input; the text is not
    otherwise validated (json.loads does that afterwards).
    """
    depth = 0
    values = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        first = token[0]
        if first not in "]}":
            values += 1
            if max_values is not None and values > max_values:
                raise JSONLimitError(
                    f"it holds more than the limit of {max_values} values", _line_at(text, match.start())
                )
        if first == '"':
            continue
        if first in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONLimitError(
                    f"nesting is deeper than the limit of {max_depth} levels",
                    _line_at(text, match.start()),
                )
        elif first in "]}":
            depth -= 1
        elif len(token) > max_number_chars:
            raise JSONLimitError(
                f"a number of {len(token)} characters is longer than the limit of {max_number_chars}",
                _line_at(text, match.start()),
            )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise JSONLimitError(f"{name} is not a JSON number")


def loads(
    data: str | bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_number_chars: int = DEFAULT_MAX_NUMBER_CHARS,
) -> Any:
    """Parse JSON within the limits; every refusal (bad syntax included) is a JSONLimitError."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONLimitError(f"the body is not UTF-8 text ({exc.reason})") from None
    check_json_text(data, max_depth=max_depth, max_number_chars=max_number_chars)
    try:
        value = json.loads(data, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise JSONLimitError(
            f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", exc.lineno
        ) from None
    except RecursionError:  # a guard: the depth scan should have refused it already
        raise JSONLimitError(f"nesting is deeper than the limit of {max_depth} levels") from None
    try:
        # A lone surrogate ("\ud800") parses, but no UTF-8 file, log or response can hold it.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JSONLimitError("a string holds a lone surrogate escape (not a character)") from None
    return value
