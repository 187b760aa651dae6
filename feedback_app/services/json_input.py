"""Load JSON from outside (request bodies, import files) into values every layer below can store.

Python's ``json`` accepts NaN and Infinity, numbers that become infinity (1e400) or that int()
refuses to read (over 4,300 digits), lone surrogates that no UTF-8 encoder writes, NUL characters
that PostgreSQL cannot store, and nesting deep enough to exhaust the stack; each of these would
fail later, far from the input, as a server error.
Here they fail at once, naming where. Whether a number fits a column is each field's check.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
# A signed 64-bit integer: the widest an id or counter column holds on SQLite and PostgreSQL.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_INT_DIGITS = 1000  # well below int()'s own limit of 4,300, which raises ValueError


class JSONInputError(ValueError):
    """The JSON is malformed or holds a value the studio refuses; the message says what and where."""


class _Refused:
    """Stands in for a number while parsing, so the walk after it can say where the number was."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows; send a finite number or null")


def _integer(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _Refused(f"the number {text[:20]}... has {len(text.lstrip('-')):,} digits, more than {MAX_INT_DIGITS:,}")
    return int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"the number {text[:40]} is out of range (it would be infinite)")
    return value


def _where(path: list) -> str:
    """Return a path like ``prompts[0].metadata.k`` (``the document`` at the top)."""
    out = ""
    for part in path:
        if isinstance(part, str):  # the message must itself be text a response can carry
            part = part.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def _check_text(text: str, path: list) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONInputError(f"{_where(path)}: holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    if "\x00" in text:  # PostgreSQL stores no NUL in text or jsonb ("unsupported Unicode escape sequence")
        raise JSONInputError(f"{_where(path)}: holds a NUL character (\\u0000), which the database cannot store")


def json_value_check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONInputError if ``value`` nests deeper than ``max_depth``, or holds a non-finite number, a lone surrogate or a NUL."""
    stack: list[tuple[Any, list, int]] = [(value, [], 0)]
    while stack:  # a loop, not recursion: the depth is what is being checked
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= max_depth:
                raise JSONInputError(f"{_where(path)}: nested more than {max_depth} levels deep")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _check_text(key, path + [key])
                stack.append((child, path + [key], depth + 1))
        elif isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, _Refused):
            raise JSONInputError(f"{_where(path)}: {item.reason}")
        elif isinstance(item, float) and not math.isfinite(item):
            raise JSONInputError(f"{_where(path)}: {item} is not a finite number")


def json_loads_strict(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing NaN/Infinity, numbers too big to read or store, lone surrogates, NUL and deep nesting."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(data, parse_constant=_constant, parse_int=_integer, parse_float=_float)
    except RecursionError:
        raise JSONInputError(f"nested more than {max_depth} levels deep") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise JSONInputError(str(exc)) from None
    json_value_check(value, max_depth=max_depth)
    return value
