"""Writing exports of the collected preferences, streamed in five formats.

Formats:
- ``trl``: one JSON line per decided comparison, ``{"prompt", "chosen", "rejected", "margin", ...}``,
  the form TRL's reward trainer and ``datasets.load_dataset("json", ...)`` read. Votes are
  aggregated as the trainer aggregates them (``rm_trainer.data.aggregate_votes``); a comparison
  whose votes decide nothing (all "both bad", or a tie) is left out. After it come the pairs its
  labels' rewrites imply (the rewrite over each reply, as training learns them), marked
  ``"implied": "rewrite"`` with the ``label_id`` that made them; other lines have ``"implied": null``.
  Each line says who decided it: ``label_source`` (``human``, ``ai`` or ``mixed``) and ``judge``.
- ``raw``: one JSON line per label, with everything known about it, its rewrite and the rewrite's
  size of change against the reply it started from (``rewrite_diff_chars``) included, and who gave
  it: ``label_source`` (``human`` for a rater or an import, ``ai`` for a judge), ``judge``, ``judge_version``.
- ``sft``: one JSON line per rewrite, ``{"prompt", "completion"}``, for supervised fine-tuning.
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

from django.conf import settings
from django.db.models import QuerySet

from feedback_app import training_bridge
from feedback_app.models import PreferenceLabel
from feedback_app.selectors.exports import CHUNK, FORMATS, RAW_COLUMNS, ExportFilters, labels_for_export, raw_row
from feedback_app.selectors.quality import rater_trust


def export_stream(*, fmt: str, filters: ExportFilters) -> Iterator[bytes]:
    """Yield the export in ``fmt`` as byte chunks."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    labels = labels_for_export(filters=filters)
    if fmt == "trl":
        return _trl_lines(labels.filter(comparison__excluded=False).order_by("comparison_id", "id"))
    if fmt == "sft":
        return _sft_lines(labels.filter(comparison__excluded=False, rewrite__isnull=False).order_by("id"))
    trust = rater_trust(campaign_id=filters.campaign_id)
    rows = (raw_row(label, trust=trust) for label in labels.order_by("id").iterator(chunk_size=CHUNK))
    if fmt == "raw":
        return (_json_line(row) for row in rows)
    if fmt == "csv":
        return _csv_chunks(rows)
    return _parquet_chunks(rows)


def _trl_lines(labels: QuerySet[PreferenceLabel]) -> Iterator[bytes]:
    for _, group in itertools.groupby(labels.iterator(chunk_size=CHUNK), key=lambda label: label.comparison_id):
        group = list(group)
        comparison = group[0].comparison
        # the filters chose which labels to export; an AI label among them counts as one vote, like a rater's
        ai = {label.judge_version_id: 1.0 for label in group if label.judge_version_id}
        pair = training_bridge.labels_aggregate(group, margins=settings.STRENGTH_MARGINS, verdict=comparison.adjudicated_winner, ai_weights=ai)
        if pair is not None and not pair.tie:
            winner = "a" if pair.chosen == comparison.response_a.text else "b"
            agreement = round(sum(1 for label in group if label.winner == winner) / len(group), 4)
            yield _json_line({**_trl_row(comparison, pair, n_labels=len(group), agreement=agreement), **_trl_sources(group)})
        for label in group:
            for implied in training_bridge.rewrite_pairs(label, margins=settings.STRENGTH_MARGINS):
                yield _json_line({**_trl_row(comparison, implied, n_labels=1, agreement=None, implied="rewrite", label_id=label.pk),
                                  **_trl_sources([label])})


def _trl_sources(labels: list[PreferenceLabel]) -> dict:
    """Return who decided a pair: ``label_source`` human, ai or mixed, and the judge of its AI label (None without one)."""
    sources = {label.label_source for label in labels}
    judge = next((label.judge_version for label in labels if label.judge_version_id), None)
    return {"label_source": sources.pop() if len(sources) == 1 else "mixed", "judge": judge.judge.name if judge else None}


def _trl_row(comparison, pair, *, n_labels: int, agreement: float | None, implied: str | None = None, label_id: int | None = None) -> dict:
    prompt = comparison.prompt
    return {
        "prompt": pair.prompt,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "margin": round(pair.margin, 4),
        "comparison_id": comparison.pk,
        "prompt_id": prompt.pk,
        "n_labels": n_labels,
        "agreement": agreement,
        "tags": [t.name for t in prompt.tags.all()],
        "policy_version": comparison.policy_version.name if comparison.policy_version_id else None,
        "reward_model_version": comparison.reward_model_version.name if comparison.reward_model_version_id else None,
        "source": prompt.source,
        "adjudicated": bool(comparison.adjudicated_winner),
        "metadata": prompt.metadata,
        "implied": implied,
        "label_id": label_id,
    }


def _sft_lines(labels: QuerySet[PreferenceLabel]) -> Iterator[bytes]:
    for label in labels.iterator(chunk_size=CHUNK):
        prompt = label.comparison.prompt
        yield _json_line({"prompt": training_bridge.prompt_as_text(text=prompt.text, context=prompt.context), "completion": label.rewrite.text})


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

    int_columns = {"label_id", "comparison_id", "prompt_id", "strength", "time_on_task_ms", "response_a_id", "response_b_id", "comparison_labels",
                   "rewrite_id", "rewrite_diff_chars", "guidelines_version"}
    float_columns = {"selection_score", "rater_trust", "agreement"}
    bool_columns = {"is_gold", "gold_correct", "excluded", "truncated_a", "truncated_b"}
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
