"""The fields of each kind of import file, the checks of a CSV header, and column mappings.

A column mapping says which of a file's columns (CSV) or keys (JSON Lines) feed which field, so a
file of another shape imports as it is: the Bitext customer-service CSV as published, its request
in "instruction" and its intent and category beside it, with ``prompt=instruction; tags=intent,category``.
Entries are ``field=column[,column...]`` separated by ";"; with a mapping only the columns it names
are read, and the others are reported as left out.

- prompt, chosen, rejected, margin, context: one column each, read as that field is read.
- responses: one or more columns, each cell one response (empty ones left out), in the order named.
- tags: one or more columns, each cell one tag or several (comma-separated, or a list).
- metadata: one or more columns, each kept under its column's name.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import cached_property
from typing import Any

PROMPT_KEYS = {"prompt", "context", "responses", "metadata", "tags"}
PREFERENCE_KEYS = {"prompt", "chosen", "rejected", "context", "margin", "metadata", "tags"}
# Each kind's fields, and those a record must have.
KINDS = {"prompts": (PROMPT_KEYS, ("prompt",)), "preferences": (PREFERENCE_KEYS, ("chosen", "rejected"))}
SINGLE = ("prompt", "chosen", "rejected", "margin", "context")  # a field read from one column; the others take several
# The columns a request is most often in, for the hint that names one.
PROMPT_LIKE = ("instruction", "question", "query", "request", "input", "text", "message", "utterance")


class ColumnMappingError(ValueError):
    """A column mapping that cannot be used; the message names the entry and what is wrong."""


@dataclass(frozen=True)
class ColumnMapping:
    fields: dict[str, tuple[str, ...]]  # field -> the columns it is read from, in order

    @cached_property
    def columns(self) -> tuple[str, ...]:
        """Every column the mapping reads, each once, in the order named."""
        return tuple(dict.fromkeys(c for columns in self.fields.values() for c in columns))

    def column_of(self, field: str) -> str:
        """Name a problem of a field read from one column by that column ("prompt" → "instruction", "context[1]" →
        "dialogue[1]"); a field of several columns keeps its name."""
        head = re.match(r"[a-z_]+", field)
        if head and head.group() in SINGLE and head.group() in self.fields:
            return self.fields[head.group()][0] + field[head.end():]
        return field

    def __str__(self) -> str:
        return "; ".join(f"{field}={','.join(columns)}" for field, columns in self.fields.items())


def column_mapping_parse(spec: str, *, kind: str) -> ColumnMapping | None:
    """Return the mapping ``spec`` gives for a file of ``kind`` (None for a blank one), or raise ColumnMappingError."""
    keys, required = KINDS[kind]
    fields: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in spec.split(";")):
        if not entry:
            continue
        field, equals, names = (part.strip() for part in entry.partition("="))
        columns = tuple(c.strip() for c in names.split(","))
        if not equals or not field:
            raise ColumnMappingError(f"'{entry}' is not field=column (e.g. prompt=instruction)")
        if field not in keys:
            raise ColumnMappingError(f"'{field}' is no field of a {kind} file (its fields: {', '.join(sorted(keys))})")
        if field in fields:
            raise ColumnMappingError(f"'{field}' is mapped twice")
        if not all(columns):
            raise ColumnMappingError(f"'{entry}' names an empty column")
        if field in SINGLE and len(columns) > 1:
            raise ColumnMappingError(f"'{field}' is read from one column, not {len(columns)}")
        if len(set(columns)) < len(columns):
            raise ColumnMappingError(f"'{entry}' names a column twice")
        fields[field] = columns
    if not fields:
        return None
    missing = [f for f in required if f not in fields]
    if missing:
        raise ColumnMappingError(f"the mapping names no column for {' or '.join(missing)}, which a {kind} file needs")
    return ColumnMapping(fields)


def mapped_object(row: dict[str, Any], mapping: ColumnMapping) -> dict[str, Any]:
    """The record a JSON object gives through a mapping: its mapped keys under their fields, the rest left out."""
    record = {field: row[columns[0]] for field, columns in mapping.fields.items() if field in SINGLE and columns[0] in row}
    if "responses" in mapping.fields:
        record["responses"] = [row[c] for c in mapping.fields["responses"] if row.get(c) not in (None, "")]
    tags = [t for c in mapping.fields.get("tags", ()) for t in _listed(row.get(c))]
    metadata = {c: row[c] for c in mapping.fields.get("metadata", ()) if row.get(c) is not None}
    return record | ({"tags": tags} if tags else {}) | ({"metadata": metadata} if metadata else {})


def _listed(value: Any) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return comma_separated(value)
    return value if isinstance(value, list) else [value]  # a number, say: the tag check names it


def comma_separated(text: str) -> list[str]:
    """The tags a text gives: its comma-separated words, blanks left out (a CSV cell, or a string through a mapping)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def header_problems(names: list[str], *, kind: str, mapping: ColumnMapping | None = None) -> list[tuple[str, str]]:
    """The problems of a CSV header as (field, message) pairs: without a mapping, columns that are no field of the kind
    (one problem naming them all, with a hint), a column named twice, a required one missing; with one, its columns
    that the file lacks or has twice."""
    if mapping is not None:
        absent = [c for c in mapping.columns if c not in names]
        problems = [("", f"no column{'s' if len(absent) > 1 else ''} {_quoted(absent)} in the file, which the column mapping "
                         f"reads (the file's columns: {_quoted(names)})")] if absent else []
        return problems + [(c, "a second column of this name (the column mapping reads it)")
                           for i, c in enumerate(names) if c in names[:i] and c in mapping.columns]
    known, required = KINDS[kind]
    numbered = kind == "prompts"  # responses may come as response_1, response_2, ... columns
    unknown = list(dict.fromkeys(n for n in names if n not in known and not (numbered and re.fullmatch(r"response_\d+", n))))
    problems = []
    if unknown:
        expected = ", ".join(sorted(known | ({"response_N"} if numbered else set())))
        problems.append(("", f"unknown column{'s' if len(unknown) > 1 else ''} {_quoted(unknown)} (expected some of: {expected}); "
                             + shape_hint(names, kind=kind, unknown=unknown)))
    problems += [(n, "a second column of this name") for i, n in enumerate(names) if n in names[:i] and n not in unknown]
    return problems + [(name, "missing column") for name in required if name not in names]


def shape_hint(names: Collection[str], *, kind: str, unknown: list[str]) -> str:
    """What to do with a file whose fields are not the kind's: import it as the other kind, if they are its, or map its columns."""
    other = other_kind(names, kind=kind)
    if other:
        return f"these are the fields of a {other} file: import it as {other}"
    if kind == "preferences":
        example = "chosen=COLUMN; rejected=COLUMN"
    else:
        example = "prompt=" + next((u for n in PROMPT_LIKE for u in unknown if u.lower() == n), unknown[0] if unknown else "COLUMN")
    return f"to import a file of another shape, give a column mapping (--columns, or Column mapping in the upload form), e.g. {example}"


def other_kind(names: Collection[str], *, kind: str) -> str | None:
    """The other kind whose fields these are (a preferences file given as prompts, say), or None."""
    names = {"responses" if re.fullmatch(r"response_\d+", n) else n for n in names}
    own_keys, own_required = KINDS[kind]
    for other, (keys, required) in KINDS.items():
        if other != kind and set(required) <= names <= keys and not (names <= own_keys and set(own_required) <= names):
            return other
    return None


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)
