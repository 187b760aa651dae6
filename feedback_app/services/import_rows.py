"""Reading an import file's rows: UTF-8 lines, JSON Lines objects, CSV records (through a column mapping or not).

Each row comes with the line it starts on; a row that cannot be read is a LineError in its place, so the
parser (services.import_parsing) reports every problem with its line and field.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from feedback_app.services.import_columns import SINGLE, ColumnMapping, comma_separated, header_problems, mapped_object
from feedback_app.services.json_input import JSONInputError, JSONSyntaxError, json_loads_strict, json_text_check


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str
    unit: str = "line"  # "line" for files, "item" for a list posted to the API

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.message}" if self.line else self.message


class Invalid(Exception):
    """A problem of one record: the field ("" for the whole record) and what is wrong."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message


def file_rows(data: bytes, filename: str, kind: str, mapping: ColumnMapping | None, left_out: list[str] | None) -> Iterator[tuple[int, Any]]:
    """The rows of a CSV (by its name) or JSON Lines file of ``kind``, read through ``mapping`` if one is given (the
    columns it does not read appended to ``left_out``)."""
    left_out = [] if left_out is None else left_out
    if filename.lower().endswith(".csv"):
        return _csv_rows(data, kind, mapping, left_out)
    return _jsonl_rows(data) if mapping is None else _mapped_objects(_jsonl_rows(data), mapping, left_out)


def _mapped_objects(rows: Iterator[tuple[int, Any]], mapping: ColumnMapping, left_out: list[str]) -> Iterator[tuple[int, Any]]:
    for number, row in rows:
        if isinstance(row, dict):
            left_out += [key for key in row if key not in mapping.columns and key not in left_out]
            row = mapped_object(row, mapping)
        yield number, row


def _decode_lines(data: bytes) -> Iterator[tuple[int, str | LineError]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield number, raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            yield number, LineError(number, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")


def _jsonl_rows(data: bytes) -> Iterator[tuple[int, Any]]:
    for number, text in _decode_lines(data):
        if isinstance(text, LineError):
            yield number, text
            continue
        if not text.strip():
            continue
        try:
            yield number, json_loads_strict(text)
        except JSONSyntaxError as exc:
            yield number, LineError(number, "", f"not valid JSON ({exc.msg} at column {exc.colno})")
        except JSONInputError as problem:
            yield number, LineError(number, problem.field, problem.message)


def _csv_rows(data: bytes, kind: str, mapping: ColumnMapping | None, left_out: list[str]) -> Iterator[tuple[int, Any]]:
    """The records of a CSV file, each numbered by the line it starts on; a header with a problem is the file's only one."""
    lines = list(_decode_lines(data))
    bad = [item for _, item in lines if isinstance(item, LineError)]
    if bad:
        yield from ((e.line, e) for e in bad)
        return
    reader = csv.DictReader(io.StringIO("\n".join(text for _, text in lines)))
    if not reader.fieldnames:
        return
    header = header_problems(reader.fieldnames, kind=kind, mapping=mapping)
    if header:  # every row would repeat it: a file of another shape (the Bitext CSV as published, say) gets one answer
        yield from ((reader.line_num, LineError(reader.line_num, field, message)) for field, message in header)
        return
    if mapping:
        left_out += [c for c in dict.fromkeys(reader.fieldnames) if c not in mapping.columns]
    response_columns = sorted((c for c in reader.fieldnames if re.fullmatch(r"response_\d+", c or "")), key=lambda c: int(c[9:]))
    for row in reader:
        # csv counts the lines read so far: a record whose quoted cells hold line breaks started that many lines before
        cells = [v for v in row.values() if isinstance(v, str)] + (row.get(None) or [])
        number = reader.line_num - sum(cell.count("\n") for cell in cells)
        if None in row:
            yield number, LineError(number, "", f"more cells than the {len(reader.fieldnames)} header columns")
            continue
        try:
            yield number, _csv_row_to_record(row, response_columns) if mapping is None else _csv_mapped_record(row, mapping)
        except Invalid as problem:
            yield number, LineError(number, mapping.column_of(problem.field) if mapping else problem.field, problem.message)


def _csv_mapped_record(row: dict[str, str], mapping: ColumnMapping) -> dict[str, Any]:
    """A CSV row read through a column mapping: each field's cells read as its own column's would be."""
    numbered = [f"response_{i}" for i in range(1, len(mapping.fields.get("responses", ())) + 1)]
    cells = {field: row[columns[0]] for field, columns in mapping.fields.items() if field in SINGLE}
    record = _csv_row_to_record(cells | dict(zip(numbered, (row[c] for c in mapping.fields.get("responses", ())))), numbered)
    tags = [tag for c in mapping.fields.get("tags", ()) if row[c] for tag in _csv_cell("tags", row[c])]
    metadata = {c: row[c] for c in mapping.fields.get("metadata", ()) if row[c]}
    return record | ({"tags": tags} if tags else {}) | ({"metadata": metadata} if metadata else {})


def _csv_row_to_record(row: dict[str, str], response_columns: list[str]) -> dict[str, Any]:
    record = {key: _csv_cell(key, value) for key, value in row.items() if key not in response_columns and value}
    if response_columns:
        if "responses" in record:
            raise Invalid("responses", "give responses either as a JSON list or in response_N columns, not both")
        record["responses"] = [row[c] for c in response_columns if row.get(c)]
    return record


def _csv_cell(key: str, value: str) -> Any:
    if key in ("context", "responses", "metadata") or (key == "tags" and value.lstrip().startswith("[")):
        try:
            return json_loads_strict(value, where=key)
        except JSONSyntaxError as exc:
            raise Invalid(key, f"not valid JSON ({exc.msg})") from None
        except JSONInputError as problem:
            raise Invalid(problem.field, problem.message) from None
    if key == "tags":
        return comma_separated(value)
    if key == "margin":
        try:
            number = float(value)
        except ValueError:
            raise Invalid(key, f"expected a number, got {value!r}") from None
        if not math.isfinite(number):
            raise Invalid(key, f"expected a finite number, got {value!r}")
        return number
    try:
        return json_text_check(value, where=key)
    except JSONInputError as problem:
        raise Invalid(problem.field, problem.message) from None
