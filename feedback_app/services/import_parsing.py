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

A file of another shape is read through a column mapping (services.import_columns); the rows are read by
services.import_rows.

Every problem is reported with its line and field; a file with any problem imports nothing,
unless the caller asks to skip invalid rows (then each skipped row is listed with its reason).
JSON is read strictly (services.json_input, the API's checks): NaN/Infinity, numbers that overflow,
integers past 64 bits, lone surrogates, NUL and nesting deeper than ``MAX_DEPTH`` are problems, not values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from django.conf import settings
from django.utils.text import slugify

from feedback_app import training_bridge
from feedback_app.services.import_columns import PREFERENCE_KEYS, PROMPT_KEYS, ColumnMapping, other_kind
from feedback_app.services.import_rows import Invalid, LineError, file_rows
from feedback_app.services.json_input import JSONInputError, json_text_check, json_value_check

ROLES = ("user", "assistant", "system")


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


def parse_prompts(data: bytes, *, filename: str, skipped: list[LineError] | None = None, mapping: ColumnMapping | None = None,
                  left_out: list[str] | None = None) -> list[PromptRecord]:
    """Return the prompt records of an import file, or raise ImportValidationError.

    With a ``skipped`` list, invalid rows are appended to it instead and the rest are returned. With a column
    ``mapping`` (services.import_columns) its columns are read, and the file's others are appended to ``left_out``.
    """
    rows = file_rows(data, filename, "prompts", mapping, left_out)
    return _parse(rows, keys=PROMPT_KEYS, build=_prompt_record, skipped=skipped, mapping=mapping, kind="prompts")


def parse_prompt_items(items: list) -> list[PromptRecord]:
    """Return the prompt records of a list posted to the API (items numbered from 1)."""
    return _parse(enumerate(items, start=1), keys=PROMPT_KEYS, build=_prompt_record, unit="item")


def parse_preferences(data: bytes, *, filename: str, skipped: list[LineError] | None = None, mapping: ColumnMapping | None = None,
                      left_out: list[str] | None = None) -> list[PreferenceRecord]:
    """Return the labelled pairs of an import file, or raise ImportValidationError.

    HH rows (two whole dialogues) are split by rm_trainer's transcript format, through the bridge.
    ``skipped``, ``mapping`` and ``left_out`` as for parse_prompts.
    """
    rows = file_rows(data, filename, "preferences", mapping, left_out)
    return _parse(rows, keys=PREFERENCE_KEYS, build=_preference_record, skipped=skipped, mapping=mapping, kind="preferences")


def _parse(
    rows: Iterable[tuple[int, Any]], *, keys: set[str], build: Callable[[int, dict], Any], unit: str = "line",
    skipped: list[LineError] | None = None, mapping: ColumnMapping | None = None, kind: str = "prompts",
) -> list:
    errors: list[LineError] = []
    total = others = 0  # others: the rows with a problem and the fields of the other kind of file
    records = []
    for line, row in rows:
        try:
            if isinstance(row, LineError):
                raise Invalid(row.field, row.message)
            if not isinstance(row, dict):
                raise Invalid("", f"expected a JSON object, got {_type_name(row)}")
            unknown = sorted(set(row) - keys)
            if unknown:
                raise Invalid(unknown[0], f"unknown field (expected some of: {', '.join(sorted(keys))})")
            records.append(build(line, row))
        except Invalid as problem:
            total += 1
            others += isinstance(row, dict) and bool(other_kind(row, kind=kind))
            # a row that could not be read comes named already (by its column, through a mapping); a record's problem is named here
            named = mapping.column_of(problem.field) if mapping and not isinstance(row, LineError) else problem.field
            error = LineError(line, named, problem.message, unit)
            if skipped is not None:
                skipped.append(error)  # every one: the caller lists what was left out
            if len(errors) < settings.IMPORT_MAX_ERRORS_SHOWN:
                errors.append(error)
    if not records and not total:
        total = 1
        errors.append(LineError(0, "", "there are no records to import", unit))
    if not records and others == total and unit == "line":  # one answer, not one a row (the API takes prompts only)
        other = "preferences" if kind == "prompts" else "prompts"
        errors, total = [LineError(0, "", f"every {unit} has the fields of a {other} file: import it as {other}", unit)], 1
    if total and (skipped is None or not records):
        raise ImportValidationError(errors, total)
    return records


def _prompt_record(line: int, row: dict[str, Any]) -> PromptRecord:
    prompt = _text(row, "prompt", required=True)
    responses = row.get("responses", [])
    if not isinstance(responses, list):
        raise Invalid("responses", f"expected a list of strings, got {_type_name(responses)}")
    if responses and len(responses) < 2:
        raise Invalid("responses", f"a comparison needs at least 2 responses, got {len(responses)}")
    if len(responses) > settings.IMPORT_MAX_RESPONSES:
        raise Invalid("responses", f"{len(responses)} responses, over the limit of {settings.IMPORT_MAX_RESPONSES}")
    texts = [_checked_text(value, f"responses[{i}]") for i, value in enumerate(responses)]
    seen: dict[str, int] = {}
    for i, text in enumerate(texts):
        if text in seen:
            raise Invalid(f"responses[{i}]", f"the same text as responses[{seen[text]}]")
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
            raise Invalid(key, "missing")
    prompt, chosen, rejected, context = row.get("prompt"), row["chosen"], row["rejected"], row.get("context", [])
    if isinstance(prompt, list) or isinstance(chosen, list):  # TRL's conversational form
        turns = _context(prompt or [], field_name="prompt")
        if not turns or turns[-1]["role"] != "user":
            raise Invalid("prompt", "a conversational prompt must end with a user message")
        prompt, context = turns[-1]["content"], turns[:-1]
        chosen, rejected = _assistant_reply(chosen, "chosen"), _assistant_reply(rejected, "rejected")
    elif prompt is None:  # HH: two whole dialogues that share everything but the last reply
        chosen, rejected = _checked_text(chosen, "chosen", allow_empty=True), _checked_text(rejected, "rejected", allow_empty=True)
        try:
            prefix, chosen, rejected = training_bridge.split_dialogues(chosen, rejected)
        except ValueError as exc:
            raise Invalid("chosen", str(exc)) from None
        turns = training_bridge.text_as_turns(prefix)
        if not turns or turns[-1]["role"] != "user":
            raise Invalid("chosen", "the shared dialogue does not end with a Human turn")
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
        raise Invalid("rejected", "the same text as chosen" + (" (both are empty)" if not chosen else ""))
    margin = row.get("margin")
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))):
        raise Invalid("margin", f"expected a number, got {_type_name(margin)}")
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
    raise Invalid(name, "expected a string or a list with one assistant message")


def _text(row: dict[str, Any], key: str, *, required: bool = False) -> str:
    if key not in row or row[key] is None:
        if required:
            raise Invalid(key, "missing")
        return ""
    return _checked_text(row[key], key)


def _checked_text(value: Any, name: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise Invalid(name, f"expected a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise Invalid(name, "is empty")
    if len(value) > settings.IMPORT_MAX_TEXT_CHARS:
        raise Invalid(name, f"{len(value):,} characters, over the limit of {settings.IMPORT_MAX_TEXT_CHARS:,}")
    try:
        return json_text_check(value, where=name)  # items posted to the API were parsed elsewhere
    except JSONInputError as problem:
        raise Invalid(problem.field, problem.message) from None


def _context(value: Any, *, field_name: str = "context") -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise Invalid(field_name, f"expected a list of turns, got {_type_name(value)}")
    turns = []
    for i, turn in enumerate(value):
        where = f"{field_name}[{i}]"
        if isinstance(turn, str):
            turns.append({"role": "user" if i % 2 == 0 else "assistant", "content": _checked_text(turn, where)})
        elif isinstance(turn, dict):
            role = turn.get("role")
            if role not in ROLES:
                raise Invalid(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
            extra = set(turn) - {"role", "content"}
            if extra:
                raise Invalid(f"{where}.{sorted(extra)[0]}", "unknown field (a turn has role and content)")
            turns.append({"role": role, "content": _checked_text(turn.get("content"), f"{where}.content")})
        else:
            raise Invalid(where, f"expected a turn object or a string, got {_type_name(turn)}")
    return turns


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("metadata", f"expected an object, got {_type_name(value)}")
    try:
        json_value_check(value, where="metadata")  # again for items posted to the API, parsed elsewhere
    except JSONInputError as problem:
        raise Invalid(problem.field, problem.message) from None
    if len(json.dumps(value)) > settings.IMPORT_MAX_TEXT_CHARS:
        raise Invalid("metadata", f"over the limit of {settings.IMPORT_MAX_TEXT_CHARS:,} characters as JSON")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise Invalid("tags", f"expected a list of strings, got {_type_name(value)}")
    tags = []
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not slugify(tag):
            raise Invalid(f"tags[{i}]", f"expected a non-empty word, got {tag!r}")
        if len(slugify(tag)) > 64:
            raise Invalid(f"tags[{i}]", "longer than 64 characters")
        tags.append(slugify(tag))
    return sorted(set(tags))


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
