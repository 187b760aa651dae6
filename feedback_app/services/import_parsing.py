"""Reading import files into validated records, before anything is written.

Two file kinds, each as JSON Lines or CSV:

- prompts: ``{"prompt": str, "context": [turns], "responses": [str, str, ...], "metadata": {...},
  "tags": [str]}``; only "prompt" is required. A turn is ``{"role": "user"|"assistant"|"system",
  "content": str}`` or a plain string (strings alternate user, assistant, ... from the first).
  In CSV, "context", "responses" and "metadata" hold JSON; responses may instead be given in
  columns "response_1", "response_2", ...; "tags" is JSON or comma-separated.
- preferences: TRL's ``{"prompt", "chosen", "rejected"}`` (strings, or conversational lists of
  messages), or Anthropic HH's ``{"chosen", "rejected"}`` whole dialogues whose shared prefix
  is the prompt.

Every problem is reported with its line and field; a file with any problem imports nothing,
unless the caller asks to skip invalid rows (then each skipped row is listed with its reason).
JSON is read strictly (services.json_input, the API's checks): NaN/Infinity, numbers that overflow,
integers past 64 bits, lone surrogates, NUL and nesting deeper than ``MAX_DEPTH`` are problems, not values.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from django.conf import settings
from django.utils.text import slugify

from feedback_app import training_bridge
from feedback_app.services.json_input import JSONInputError, JSONSyntaxError, json_loads_strict, json_text_check, json_value_check

PROMPT_KEYS = {"prompt", "context", "responses", "metadata", "tags"}
PREFERENCE_KEYS = {"prompt", "chosen", "rejected", "context", "margin", "metadata", "tags"}
ROLES = ("user", "assistant", "system")
# The columns a CSV file of each kind may have, and those it must have.
PROMPT_COLUMNS = (PROMPT_KEYS, ("prompt",))
PREFERENCE_COLUMNS = (PREFERENCE_KEYS, ("chosen", "rejected"))


@dataclass(frozen=True)
class LineError:
    line: int
    field: str
    message: str
    unit: str = "line"  # "line" for files, "item" for a list posted to the API

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}" + (f", field '{self.field}'" if self.field else "")
        return f"{where}: {self.message}" if self.line else self.message


class ImportValidationError(Exception):
    """The file has problems; ``errors`` lists the first of them, ``total`` counts all."""

    def __init__(self, errors: list[LineError], total: int) -> None:
        self.errors = errors
        self.total = total
        more = f" (and {total - len(errors)} more)" if total > len(errors) else ""
        super().__init__(f"{total} problem(s) in the file{more}:\n" + "\n".join(str(e) for e in errors))


@dataclass(frozen=True)
class PromptRecord:
    line: int
    prompt: str
    context: list[dict[str, str]] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PreferenceRecord:
    line: int
    prompt: str
    chosen: str
    rejected: str
    context: list[dict[str, str]] = field(default_factory=list)
    margin: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


class _Invalid(Exception):
    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.message = message


def parse_prompts(data: bytes, *, filename: str, skipped: list[LineError] | None = None) -> list[PromptRecord]:
    """Return the prompt records of an import file, or raise ImportValidationError.

    With a ``skipped`` list, invalid rows are appended to it instead and the rest are returned.
    """
    return _parse(_file_rows(data, filename, PROMPT_COLUMNS), keys=PROMPT_KEYS, build=_prompt_record, skipped=skipped)


def parse_prompt_items(items: list) -> list[PromptRecord]:
    """Return the prompt records of a list posted to the API (items numbered from 1)."""
    return _parse(enumerate(items, start=1), keys=PROMPT_KEYS, build=_prompt_record, unit="item")


def parse_preferences(data: bytes, *, filename: str, skipped: list[LineError] | None = None) -> list[PreferenceRecord]:
    """Return the labelled pairs of an import file, or raise ImportValidationError.

    HH rows (two whole dialogues) are split by rm_trainer's transcript format, through the bridge.
    With a ``skipped`` list, invalid rows are appended to it instead and the rest are returned.
    """
    return _parse(_file_rows(data, filename, PREFERENCE_COLUMNS), keys=PREFERENCE_KEYS, build=_preference_record, skipped=skipped)


def _file_rows(data: bytes, filename: str, columns: tuple[set[str], tuple[str, ...]]) -> Iterator[tuple[int, Any]]:
    return _csv_rows(data, columns) if filename.lower().endswith(".csv") else _jsonl_rows(data)


def _parse(
    rows: Iterable[tuple[int, Any]], *, keys: set[str], build: Callable[[int, dict], Any], unit: str = "line",
    skipped: list[LineError] | None = None,
) -> list:
    errors: list[LineError] = []
    total = 0
    records = []
    for line, row in rows:
        try:
            if isinstance(row, LineError):
                raise _Invalid(row.field, row.message)
            if not isinstance(row, dict):
                raise _Invalid("", f"expected a JSON object, got {_type_name(row)}")
            unknown = sorted(set(row) - keys)
            if unknown:
                raise _Invalid(unknown[0], f"unknown field (expected some of: {', '.join(sorted(keys))})")
            records.append(build(line, row))
        except _Invalid as problem:
            total += 1
            error = LineError(line, problem.field, problem.message, unit)
            if skipped is not None:
                skipped.append(error)  # every one: the caller lists what was left out
            if len(errors) < settings.IMPORT_MAX_ERRORS_SHOWN:
                errors.append(error)
    if not records and not total:
        total = 1
        errors.append(LineError(0, "", "there are no records to import", unit))
    if total and (skipped is None or not records):
        raise ImportValidationError(errors, total)
    return records


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


def _csv_rows(data: bytes, columns: tuple[set[str], tuple[str, ...]]) -> Iterator[tuple[int, Any]]:
    """The records of a CSV file, each numbered by the line it starts on; a header with a problem is the file's only one."""
    lines = list(_decode_lines(data))
    bad = [item for _, item in lines if isinstance(item, LineError)]
    if bad:
        yield from ((e.line, e) for e in bad)
        return
    reader = csv.DictReader(io.StringIO("\n".join(text for _, text in lines)))
    if not reader.fieldnames:
        return
    header = _header_errors(reader.fieldnames, *columns, line=reader.line_num)
    if header:  # every row would repeat it: a file of another shape (the Bitext CSV as published, say) gets one answer
        yield from ((e.line, e) for e in header)
        return
    response_columns = sorted((c for c in reader.fieldnames if re.fullmatch(r"response_\d+", c or "")), key=lambda c: int(c[9:]))
    for row in reader:
        # csv counts the lines read so far: a record whose quoted cells hold line breaks started that many lines before
        cells = [v for v in row.values() if isinstance(v, str)] + (row.get(None) or [])
        number = reader.line_num - sum(cell.count("\n") for cell in cells)
        if None in row:
            yield number, LineError(number, "", f"more cells than the {len(reader.fieldnames)} header columns")
            continue
        try:
            yield number, _csv_row_to_record(row, response_columns)
        except _Invalid as problem:
            yield number, LineError(number, problem.field, problem.message)


def _header_errors(names: list[str], known: set[str], required: tuple[str, ...], *, line: int) -> list[LineError]:
    """The problems of a CSV header: columns that are no field of the kind (one problem, naming them all), a column named
    twice, a required one missing."""
    numbered = "responses" in known  # responses may come as response_1, response_2, ... columns
    unknown = list(dict.fromkeys(n for n in names if n not in known and not (numbered and re.fullmatch(r"response_\d+", n))))
    errors = []
    if unknown:
        expected = ", ".join(sorted(known | ({"response_N"} if numbered else set())))
        columns = ", ".join(f"'{n}'" for n in unknown)
        errors.append(LineError(line, "", f"unknown column{'s' if len(unknown) > 1 else ''} {columns} (expected some of: {expected})"))
    errors += [LineError(line, n, "a second column of this name") for i, n in enumerate(names) if n in names[:i] and n not in unknown]
    return errors + [LineError(line, name, "missing column") for name in required if name not in names]


def _csv_row_to_record(row: dict[str, str], response_columns: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in row.items():
        if key in response_columns or value is None or value == "":
            continue
        if key in ("context", "responses", "metadata") or (key == "tags" and value.lstrip().startswith("[")):
            try:
                record[key] = json_loads_strict(value, where=key)
            except JSONSyntaxError as exc:
                raise _Invalid(key, f"not valid JSON ({exc.msg})") from None
            except JSONInputError as problem:
                raise _Invalid(problem.field, problem.message) from None
        elif key == "tags":
            record[key] = [t.strip() for t in value.split(",") if t.strip()]
        elif key == "margin":
            try:
                record[key] = float(value)
            except ValueError:
                raise _Invalid(key, f"expected a number, got {value!r}") from None
            if not math.isfinite(record[key]):
                raise _Invalid(key, f"expected a finite number, got {value!r}")
        else:
            try:
                record[key] = json_text_check(value, where=key)
            except JSONInputError as problem:
                raise _Invalid(problem.field, problem.message) from None
    if response_columns:
        if "responses" in record:
            raise _Invalid("responses", "give responses either as a JSON list or in response_N columns, not both")
        record["responses"] = [row[c] for c in response_columns if row.get(c)]
    return record


def _prompt_record(line: int, row: dict[str, Any]) -> PromptRecord:
    prompt = _text(row, "prompt", required=True)
    responses = row.get("responses", [])
    if not isinstance(responses, list):
        raise _Invalid("responses", f"expected a list of strings, got {_type_name(responses)}")
    if responses and len(responses) < 2:
        raise _Invalid("responses", f"a comparison needs at least 2 responses, got {len(responses)}")
    if len(responses) > settings.IMPORT_MAX_RESPONSES:
        raise _Invalid("responses", f"{len(responses)} responses, over the limit of {settings.IMPORT_MAX_RESPONSES}")
    texts = [_checked_text(value, f"responses[{i}]") for i, value in enumerate(responses)]
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text in seen:
            raise _Invalid(f"responses[{i}]", f"the same text as responses[{seen[text]}]")
        seen[text] = i
    return PromptRecord(
        line=line,
        prompt=prompt,
        context=_context(row.get("context", [])),
        responses=texts,
        metadata=_metadata(row.get("metadata", {})),
        tags=_tags(row.get("tags", [])),
    )


def _preference_record(line: int, row: dict[str, Any]) -> PreferenceRecord:
    for key in ("chosen", "rejected"):
        if key not in row:
            raise _Invalid(key, "missing")
    prompt, chosen, rejected, context = row.get("prompt"), row["chosen"], row["rejected"], row.get("context", [])
    if isinstance(prompt, list) or isinstance(chosen, list):  # TRL's conversational form
        turns = _context(prompt or [], field_name="prompt")
        if not turns or turns[-1]["role"] != "user":
            raise _Invalid("prompt", "a conversational prompt must end with a user message")
        prompt, context = turns[-1]["content"], turns[:-1]
        chosen, rejected = _assistant_reply(chosen, "chosen"), _assistant_reply(rejected, "rejected")
    elif prompt is None:  # HH: two whole dialogues that share everything but the last reply
        chosen, rejected = _checked_text(chosen, "chosen", allow_empty=True), _checked_text(rejected, "rejected", allow_empty=True)
        try:
            prefix, chosen, rejected = training_bridge.split_dialogues(chosen, rejected)
        except ValueError as exc:
            raise _Invalid("chosen", str(exc)) from None
        turns = training_bridge.text_as_turns(prefix)
        if not turns or turns[-1]["role"] != "user":
            raise _Invalid("chosen", "the shared dialogue does not end with a Human turn")
        prompt, context = turns[-1]["content"], turns[:-1]
    else:
        prompt = _text(row, "prompt", required=True)
        if prompt.startswith("\n\nHuman: ") or prompt.startswith("Human: "):
            turns = training_bridge.text_as_turns(prompt if prompt.startswith("\n\n") else "\n\n" + prompt)
            if turns and turns[-1]["role"] == "user":
                prompt, context = turns[-1]["content"], turns[:-1]
        context = _context(context) if context else context
    # An empty reply is a reply: in harmless data saying nothing is sometimes what was preferred.
    chosen = _checked_text(chosen, "chosen", allow_empty=True).strip()
    rejected = _checked_text(rejected, "rejected", allow_empty=True).strip()
    if chosen == rejected:
        raise _Invalid("rejected", "the same text as chosen" + (" (both are empty)" if not chosen else ""))
    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise _Invalid("margin", f"expected a number, got {_type_name(margin)}")
    return PreferenceRecord(
        line=line, prompt=_checked_text(prompt, "prompt"), chosen=chosen, rejected=rejected, context=context,
        margin=float(margin) if margin is not None else None,
        metadata=_metadata(row.get("metadata", {})), tags=_tags(row.get("tags", [])),
    )


def _assistant_reply(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and value[0].get("role") == "assistant":
        return _checked_text(value[0].get("content"), f"{name}[0].content", allow_empty=True)
    raise _Invalid(name, "expected a string or a list with one assistant message")


def _text(row: dict[str, Any], key: str, *, required: bool = False) -> str:
    if key not in row or row[key] is None:
        if required:
            raise _Invalid(key, "missing")
        return ""
    return _checked_text(row[key], key)


def _checked_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid(name, f"expected a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise _Invalid(name, "is empty")
    if len(value) > settings.IMPORT_MAX_TEXT_CHARS:
        raise _Invalid(name, f"{len(value):,} characters, over the limit of {settings.IMPORT_MAX_TEXT_CHARS:,}")
    try:
        return json_text_check(value, where=name)  # items posted to the API were parsed elsewhere
    except JSONInputError as problem:
        raise _Invalid(problem.field, problem.message) from None


def _context(value: Any, *, field_name: str = "context") -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise _Invalid(field_name, f"expected a list of turns, got {_type_name(value)}")
    turns = []
    for i, turn in enumerate(value):
        where = f"{field_name}[{i}]"
        if isinstance(turn, str):
            turns.append({"role": "user" if i % 2 == 0 else "assistant", "content": _checked_text(turn, where)})
        elif isinstance(turn, dict):
            role = turn.get("role")
            if role not in ROLES:
                raise _Invalid(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
            extra = set(turn) - {"role", "content"}
            if extra:
                raise _Invalid(f"{where}.{sorted(extra)[0]}", "unknown field (a turn has role and content)")
            turns.append({"role": role, "content": _checked_text(turn.get("content"), f"{where}.content")})
        else:
            raise _Invalid(where, f"expected a turn object or a string, got {_type_name(turn)}")
    return turns


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid("metadata", f"expected an object, got {_type_name(value)}")
    try:
        json_value_check(value, where="metadata")  # again for items posted to the API, parsed elsewhere
    except JSONInputError as problem:
        raise _Invalid(problem.field, problem.message) from None
    if len(json.dumps(value)) > settings.IMPORT_MAX_TEXT_CHARS:
        raise _Invalid("metadata", f"over the limit of {settings.IMPORT_MAX_TEXT_CHARS:,} characters as JSON")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid("tags", f"expected a list of strings, got {_type_name(value)}")
    tags = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not slugify(tag):
            raise _Invalid(f"tags[{i}]", f"expected a non-empty word, got {tag!r}")
        if len(slugify(tag)) > 64:
            raise _Invalid(f"tags[{i}]", "longer than 64 characters")
        tags.append(slugify(tag))
    return sorted(set(tags))


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
