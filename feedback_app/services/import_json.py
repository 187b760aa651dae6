"""Strict JSON for imports: values JSON can spell but the studio cannot store or show safely.

NaN and Infinity, numbers that overflow a float, integers past 64 bits, lone UTF-16 surrogates
(which cannot be encoded as UTF-8, so PostgreSQL rejects them) and nesting past MAX_JSON_DEPTH
are refused, each naming the field where it was found; RecursionError never escapes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32  # containers inside containers, the outermost counted
_INT64 = (-(2**63), 2**63 - 1)
_SURROGATE = re.compile("[\ud800-\udfff]")


class UnsafeJson(ValueError):
    """A JSON value the studio refuses; ``field`` is where it was found ("metadata.a[2]")."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name
        self.message = message


def strict_json_loads(text: str, *, field_name: str = "") -> Any:
    """Return the JSON value of ``text``; raise UnsafeJson naming the field of a value JSON cannot hold safely.

    Malformed JSON raises json.JSONDecodeError as usual.
    """
    try:
        value = json.loads(text, parse_constant=_NotANumber)
    except RecursionError:  # the C scanner's own limit, far past MAX_JSON_DEPTH
        raise UnsafeJson(field_name, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json_value(value, field_name)
    return value


class _NotANumber(str):
    """What the parser returns for NaN/Infinity, so the check below can name the field."""


def check_json_value(value: Any, field_name: str) -> None:
    """Raise UnsafeJson for a value inside ``value`` (already parsed) that the studio refuses."""
    # Iterative, so a deep value cannot raise RecursionError here either.
    stack = [(value, field_name, 1)]  # depth: how many containers hold the item, itself included
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH and isinstance(item, (dict, list)):
            top = re.split(r"[.\[]", where, maxsplit=1)[0]  # the full path would be as deep as the value
            raise UnsafeJson(top, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, _NotANumber):
            raise UnsafeJson(where, f"{item} is not a JSON number")
        if isinstance(item, str):
            no_surrogates(item, where)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not _INT64[0] <= item <= _INT64[1]:
            raise UnsafeJson(where, "an integer past the 64-bit range (-2^63 .. 2^63-1)")
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJson(where, "a number too large to store")
        elif isinstance(item, dict):
            for key, child in item.items():
                no_surrogates(key, where)
                stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def no_surrogates(text: str, where: str) -> str:
    """Return ``text``, or raise UnsafeJson when it holds a lone surrogate (not encodable as UTF-8)."""
    found = _SURROGATE.search(text)
    if found:
        raise UnsafeJson(where, f"contains a lone UTF-16 surrogate (U+{ord(found.group()):04X} at character {found.start() + 1})")
    return text
