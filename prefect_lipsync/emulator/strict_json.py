"""JSON as the service accepts it: UTF-8, finite numbers that fit 64 bits, no lone surrogates, a
bounded nesting depth. Anything else is a `BodyError` (answered 400 in the service's error shape),
never a RecursionError, a ValueError from int(), or a UnicodeEncodeError while answering.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; a task is about 5 deep."""
MAX_NUMBER_CHARS = 64
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # int64 or uint64, as the service's decoders take them
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BodyError(ValueError):
    """The body is not the JSON the service expects."""


def check_number(text: str) -> int | float:
    """The value of a JSON number's text; BodyError when it is out of range (1e400, 10**400)."""
    if len(text) > MAX_NUMBER_CHARS:
        raise BodyError(
            f"the body is not valid JSON: a number has {len(text)} characters (at most {MAX_NUMBER_CHARS})"
        )
    is_float = any(c in text for c in ".eE")
    try:
        value: int | float = float(text) if is_float else int(text)
    except ValueError:
        raise BodyError(f"the body is not valid JSON: bad number {text[:40]!r}") from None
    if text.startswith("+") or (isinstance(value, float) and not math.isfinite(value)):
        raise BodyError(f"the body is not valid JSON: number {text[:40]!r} is out of range")
    if isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX:
        raise BodyError(f"the body is not valid JSON: integer {text[:40]!r} does not fit in 64 bits")
    return value


def check_string(value: str) -> str:
    """`value`, or BodyError when it holds a lone UTF-16 surrogate (not encodable as UTF-8)."""
    if not value.isascii() and _LONE_SURROGATE.search(value):
        raise BodyError(
            "the body is not valid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)"
        )
    return value


def _refuse_constant(name: str) -> Any:
    raise BodyError(f"the body is not valid JSON: {name} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """Parse a JSON document held in memory, with the limits above."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(
            text, parse_int=check_number, parse_float=check_number, parse_constant=_refuse_constant
        )
    except UnicodeDecodeError as exc:
        raise BodyError(
            f"the body is not valid JSON: it is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BodyError(f"the body is not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
    check_tree(value)
    return value


def check_tree(value: Any) -> None:
    """Depth and string checks over a parsed value, without recursion (a deep value cannot crash it)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_string(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BodyError(f"the body is not valid JSON: nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    check_string(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
