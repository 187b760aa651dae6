"""Streaming exports of the collected preferences.

Formats:
- ``trl``: one JSON line per decided comparison, ``{"prompt", "chosen", "rejected", "margin", ...}``,
  the form TRL's reward trainer and ``datasets.load_dataset("json", ...)`` read. Votes are
  aggregated as the trainer aggregates them (``rm_trainer.data.aggregate_votes``); a comparison
  whose votes decide nothing (all "both bad", or a tie) is left out.
- ``raw``: one JSON line per label, with everything known about it.
- ``csv`` and ``parquet``: the raw rows as a table; nested values (criteria, flags, context,
  tags) are JSON strings. In ``csv`` a text cell that starts with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading ``'`` so that a spreadsheet shows it as text instead of
  running it as a formula (OWASP "CSV injection"); numbers stay numbers, and a text cell such as
  ``"-5"`` is text all the same. ``parquet`` keeps every value as it is: it is read by programs,
  not spreadsheets, and is typed.

Rows are read in chunks and written as they come, so memory stays flat however many labels.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from feedback_app import training_bridge
from feedback_app.models import PreferenceLabel
from feedback_app.models.labels import winner_to_side
from feedback_app.selectors.prompts import prompt_as_text
from feedback_app.selectors.quality import rater_trust

FORMATS = ("trl", "raw", "csv", "parquet")
CONTENT_TYPES = {
    "trl": "application/x-ndjson",
    "raw": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}
EXTENSIONS = {"trl": "jsonl", "raw": "jsonl", "csv": "csv", "parquet": "parquet"}
RAW_COLUMNS = [
    "label_id", "comparison_id", "prompt_id", "rater", "winner", "choice", "displayed_order", "strength", "criteria",
    "rationale", "flags", "edited_text", "time_on_task_ms", "labelled_at", "leased_at", "prompt", "context", "tags",
    "response_a_id", "response_a", "response_a_origin", "response_b_id", "response_b", "response_b_origin",
    "comparison_kind", "policy_version", "reward_model_version", "selection_strategy", "selection_score", "source",
    "is_gold", "gold_winner", "gold_correct", "rater_trust", "comparison_labels", "agreement", "adjudicated_winner", "excluded",
]
CHUNK = 2000


@dataclass(frozen=True)
class ExportFilters:
    """Which labels to export; every field narrows the set."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    rater: str = ""  # a username or a pseudonym
    tags: tuple[str, ...] = field(default_factory=tuple)  # prompts with any of these tags
    exclude_flagged: bool = False
    include_imported: bool = True


def labels_for_export(*, filters: ExportFilters) -> QuerySet[PreferenceLabel]:
    """Return the labels that ``filters`` select, with what an export row needs joined in."""
    labels = PreferenceLabel.objects.all()
    if filters.date_from:
        labels = labels.filter(created_at__gte=filters.date_from)
    if filters.date_to:
        labels = labels.filter(created_at__lt=filters.date_to)
    if filters.rater:
        labels = labels.filter(Q(rater__username=filters.rater) | Q(rater__profile__pseudonym=filters.rater))
    if filters.tags:
        labels = labels.filter(comparison__prompt__tags__name__in=filters.tags).distinct()
    if filters.exclude_flagged:
        labels = labels.filter(flags=[])
    if not filters.include_imported:
        labels = labels.filter(rater__isnull=False)
    same = PreferenceLabel.objects.filter(comparison=OuterRef("comparison"), winner=OuterRef("winner"), rater__isnull=False)
    every = PreferenceLabel.objects.filter(comparison=OuterRef("comparison"), rater__isnull=False)
    labels = labels.annotate(n_same=_count(same), n_rater_labels=_count(every))
    return labels.select_related(
        "rater__profile", "assignment", "comparison__prompt", "comparison__response_a__policy_version",
        "comparison__response_b__policy_version", "comparison__policy_version", "comparison__reward_model_version",
        "import_batch",
    ).prefetch_related("comparison__prompt__tags")


def _count(queryset) -> Coalesce:
    return Coalesce(Subquery(queryset.order_by().values("comparison").annotate(n=Count("id")).values("n"), output_field=IntegerField()), Value(0))


def export_stream(*, fmt: str, filters: ExportFilters) -> Iterator[bytes]:
    """Yield the export in ``fmt`` as byte chunks."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    labels = labels_for_export(filters=filters)
    if fmt == "trl":
        return _trl_lines(labels.filter(comparison__excluded=False).order_by("comparison_id", "id"))
    trust = rater_trust()
    rows = (raw_row(label, trust=trust) for label in labels.order_by("id").iterator(chunk_size=CHUNK))
    if fmt == "raw":
        return (_json_line(row) for row in rows)
    if fmt == "csv":
        return _csv_chunks(rows)
    return _parquet_chunks(rows)


def raw_row(label: PreferenceLabel, *, trust: dict[int, float] | None = None) -> dict:
    """Return one label as an export row (``label`` annotated as by ``labels_for_export``)."""
    comparison = label.comparison
    prompt = comparison.prompt
    a_on_left = label.a_on_left
    return {
        "label_id": label.pk,
        "comparison_id": comparison.pk,
        "prompt_id": prompt.pk,
        "rater": label.rater.profile.pseudonym if label.rater_id and hasattr(label.rater, "profile") else
        (f"u-{label.rater_id}" if label.rater_id else f"import-{label.import_batch_id}"),
        "winner": label.winner,
        "choice": winner_to_side(label.winner, a_on_left=a_on_left) if a_on_left is not None else None,
        "displayed_order": None if a_on_left is None else ("a_left" if a_on_left else "b_left"),
        "strength": label.strength,
        "criteria": label.criteria,
        "rationale": label.rationale,
        "flags": label.flags,
        "edited_text": label.edited_text,
        "time_on_task_ms": label.time_on_task_ms,
        "labelled_at": label.created_at.isoformat(),
        "leased_at": label.assignment.leased_at.isoformat() if label.assignment_id else None,
        "prompt": prompt.text,
        "context": prompt.context,
        "tags": [t.name for t in prompt.tags.all()],
        "response_a_id": comparison.response_a_id,
        "response_a": comparison.response_a.text,
        "response_a_origin": comparison.response_a.origin,
        "response_b_id": comparison.response_b_id,
        "response_b": comparison.response_b.text,
        "response_b_origin": comparison.response_b.origin,
        "comparison_kind": comparison.kind,
        "policy_version": comparison.policy_version.name if comparison.policy_version_id else None,
        "reward_model_version": comparison.reward_model_version.name if comparison.reward_model_version_id else None,
        "selection_strategy": comparison.selection_strategy or None,
        "selection_score": comparison.selection_score,
        "source": prompt.source,
        "is_gold": comparison.is_gold,
        "gold_winner": comparison.gold_winner or None,
        "gold_correct": (label.winner == comparison.gold_winner) if comparison.is_gold and comparison.gold_winner else None,
        "rater_trust": (trust or {}).get(label.rater_id) if label.rater_id else None,
        "comparison_labels": getattr(label, "n_rater_labels", None),
        "agreement": round(label.n_same / label.n_rater_labels, 4) if getattr(label, "n_rater_labels", 0) and label.rater_id else None,
        "adjudicated_winner": comparison.adjudicated_winner or None,
        "excluded": comparison.excluded,
    }


def _trl_lines(labels: QuerySet[PreferenceLabel]) -> Iterator[bytes]:
    for _, group in itertools.groupby(labels.iterator(chunk_size=CHUNK), key=lambda label: label.comparison_id):
        group = list(group)
        pair = training_bridge.labels_aggregate(group, margins=settings.STRENGTH_MARGINS, verdict=group[0].comparison.adjudicated_winner)
        if pair is None or pair.tie:
            continue
        comparison = group[0].comparison
        prompt = comparison.prompt
        winner = "a" if pair.chosen == comparison.response_a.text else "b"
        yield _json_line({
            "prompt": prompt_as_text(text=prompt.text, context=prompt.context),
            "chosen": pair.chosen,
            "rejected": pair.rejected,
            "margin": round(pair.margin, 4),
            "comparison_id": comparison.pk,
            "prompt_id": prompt.pk,
            "n_labels": len(group),
            "agreement": round(sum(1 for label in group if label.winner == winner) / len(group), 4),
            "tags": [t.name for t in prompt.tags.all()],
            "policy_version": comparison.policy_version.name if comparison.policy_version_id else None,
            "reward_model_version": comparison.reward_model_version.name if comparison.reward_model_version_id else None,
            "source": prompt.source,
            "adjudicated": bool(comparison.adjudicated_winner),
            "metadata": prompt.metadata,
        })


def _batched(items: Iterator, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _json_line(row: dict) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def _flat(row: dict) -> dict:
    return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in row.items()}


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """Return ``value`` as a CSV cell that no spreadsheet runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_chunks(rows: Iterator[dict]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RAW_COLUMNS)
    writer.writeheader()
    for batch in _batched(rows, 500):
        for row in batch:
            writer.writerow({k: csv_cell(v) for k, v in _flat(row).items()})
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")


class _ChunkSink(io.RawIOBase):
    """A write-only file that hands back what was written since the last ``take``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _parquet_chunks(rows: Iterator[dict]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    int_columns = {"label_id", "comparison_id", "prompt_id", "strength", "time_on_task_ms", "response_a_id", "response_b_id", "comparison_labels"}
    float_columns = {"selection_score", "rater_trust", "agreement"}
    bool_columns = {"is_gold", "gold_correct", "excluded"}
    schema = pa.schema([
        (name, pa.int64() if name in int_columns else pa.float64() if name in float_columns else pa.bool_() if name in bool_columns else pa.string())
        for name in RAW_COLUMNS
    ])
    sink = _ChunkSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    for batch in _batched(rows, 5000):
        flat = [_flat(row) for row in batch]
        writer.write_table(pa.Table.from_pylist(flat, schema=schema))
        yield sink.take()
    writer.close()
    yield sink.take()
