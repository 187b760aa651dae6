"""Load JSON from outside (request bodies, import files) into values every layer below can store.

Python's ``json`` accepts NaN and Infinity, numbers that become infinity (1e400) or that int()
refuses to read (over 4,300 digits), lone surrogates that no UTF-8 encoder writes, NUL characters
that PostgreSQL cannot store, and nesting deep enough to exhaust the stack; each of these would
fail later, far from the input, as a server error.
Here they fail at once as a JSONInputError whose ``field`` names where ("metadata.scores[2]").
The API and the importer share the checks and the wording. An integer that can be read is kept
exactly (JSON columns store it as it is); whether a number fits a column is that field's check.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # containers inside containers, the outermost counted
# A signed 64-bit integer: the widest an id or counter column holds on SQLite and PostgreSQL.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_INT_DIGITS = 1000  # well below int()'s own limit of 4,300, which raises ValueError
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_SPELLING = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


class JSONInputError(ValueError):
    """The JSON is malformed or holds a value the studio refuses; ``field`` says where, ``message`` what."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name
        self.message = message


class JSONSyntaxError(JSONInputError):
    """The text is not JSON at all; ``msg`` and ``colno`` are json's own, for callers that word it their way."""

    def __init__(self, exc: json.JSONDecodeError) -> None:
        super().__init__("", str(exc))
        self.msg = exc.msg
        self.colno = exc.colno


class _Refused:
    """Stands in for a number while parsing, so the walk after it can say where the number was."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _not_a_number(name: str) -> str:
    return f"{name} is not a number JSON allows; use a finite number or null"


def _constant(name: str) -> _Refused:
    return _Refused(_not_a_number(name))


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
    """Return a path like ``prompts[0].metadata.k`` ("" at the top)."""
    out = ""
    for part in path:
        if isinstance(part, str):  # the message must itself be text a response can carry
            part = part.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _text_problem(text: str) -> str | None:
    found = _SURROGATE.search(text)
    if found:
        return f"holds a lone surrogate (U+{ord(found.group()):04X} at character {found.start() + 1}), which is not text"
    if "\x00" in text:  # PostgreSQL stores no NUL in text or jsonb ("unsupported Unicode escape sequence")
        return "holds a NUL character (\\u0000), which the database cannot store"
    return None


def json_text_check(text: str, *, where: str = "") -> str:
    """Return ``text``, or raise JSONInputError naming ``where`` if it holds a lone surrogate or a NUL."""
    problem = _text_problem(text)
    if problem:
        raise JSONInputError(_where([where]), problem)
    return text


def _number_problem(item: Any) -> str | None:
    if isinstance(item, float) and not math.isfinite(item):  # parsed elsewhere, e.g. float("nan")
        return _not_a_number(_JSON_SPELLING[str(item)])
    return None


def json_value_check(value: Any, *, where: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONInputError for a value inside ``value`` the studio refuses, naming its place below ``where``.

    Refused: nesting deeper than ``max_depth``, a non-finite number, a lone surrogate or a NUL.
    """
    stack: list[tuple[Any, list, int]] = [(value, [where] if where else [], 0)]
    while stack:  # a loop, not recursion: the depth is what is being checked
        item, path, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= max_depth:  # name the outermost field: the full path is as deep as the value
                raise JSONInputError(_where(path[:1] if path and isinstance(path[0], str) else []),
                                     f"nested more than {max_depth} levels deep")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and _text_problem(key):
                    raise JSONInputError(_where(path + [key]), _text_problem(key))
                stack.append((child, path + [key], depth + 1))
            continue
        problem = (_text_problem(item) if isinstance(item, str) else item.reason if isinstance(item, _Refused)
                   else _number_problem(item))
        if problem:
            raise JSONInputError(_where(path), problem)


def json_loads_strict(data: str | bytes, *, where: str = "", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing NaN/Infinity, numbers too big to read, lone surrogates, NUL and deep nesting.

    ``where`` names the text's own place (a CSV column) in messages. Text that is not JSON raises
    JSONSyntaxError.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONInputError(where, f"not UTF-8 text (byte {exc.start})") from None
    try:
        value = json.loads(data, parse_constant=_constant, parse_int=_integer, parse_float=_float)
    except RecursionError:  # the C scanner's own limit, far past MAX_DEPTH; where it struck is unknown
        raise JSONInputError(where, f"nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise JSONSyntaxError(exc) from None
    except ValueError as exc:  # anything else json itself refuses: a clear error, not a 500
        raise JSONInputError(where, str(exc)) from None
    json_value_check(value, where=where, max_depth=max_depth)
    return value
