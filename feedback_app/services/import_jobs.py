"""Importing a file in the background: parse all of it, stage it in short chunks, publish it at once.

A big import used to hold the write lock for as long as it took to write every row, and raters
labelling meanwhile got "database is locked". Here each chunk of ``IMPORT_CHUNK_RECORDS`` records
is its own short transaction, with a pause (``IMPORT_CHUNK_PAUSE_SECONDS``) between chunks. The
rows are written under an unpublished batch that raters, supply, stats and exports do not see
(comparisons "staged", prompts of an unpublished batch); publishing flips them in one short
transaction. A failure anywhere deletes what was staged, so nothing is half-published.

The uploaded file is removed once its job is done. A failed job's file is kept
IMPORT_KEEP_FAILED_HOURS, so the upload can be tried again with other choices (a column mapping,
say) without sending the file again (``import_job_retry``); the reaper removes it after that. A job
whose worker is asked to stop ends between two chunks, removes what it staged and waits in the
queue again, to start afresh once a worker serves it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from feedback_app import events
from feedback_app.models import DEFAULT_CAMPAIGN_ID, Comparison, ImportBatch, ImportJob, Prompt, Response
from feedback_app.services.import_columns import ColumnMappingError, column_mapping_parse
from feedback_app.services.import_parsing import ImportValidationError, parse_preferences, parse_prompts
from feedback_app.services.import_rows import LineError
from feedback_app.services.imports import (
    ImportRefused,
    batch_create,
    chosen_first_draw,
    preference_labels_write,
    preference_pairs_write,
    prompt_rows_write,
)
from feedback_app.services.quality_tally import quality_tally_reopen_after_commit

logger = logging.getLogger(__name__)
Progress = Callable[[str, dict], None]


@dataclass(frozen=True)
class ImportOutcome:
    batch: ImportBatch
    skipped: list[LineError]
    left_out: list[str] = field(default_factory=list)  # the file's columns a column mapping did not read


class ImportStopped(Exception):
    """The worker is stopping: the import ends between two chunks, and its job goes back to the queue."""


class ImportFileGone(Exception):
    """The file of the job to try again is no longer kept (the job did not fail, or its keep ran out): upload it again."""


def import_job_create(
    *, kind: str, data: bytes, filename: str, user=None, required_labels: int | None = None,
    allow_duplicate: bool = False, skip_invalid: bool = False, campaign_id: int = DEFAULT_CAMPAIGN_ID, columns: str = "",
) -> ImportJob:
    """Keep an uploaded file under IMPORT_DIR and queue the job that imports it into the campaign."""
    return _job_queue(kind=kind, filename=filename, user=user, write=lambda path: _file_write(path, data),
                      options=_job_options(required_labels, allow_duplicate, skip_invalid, campaign_id, columns))


def import_job_retry(
    *, job: ImportJob, kind: str, user=None, required_labels: int | None = None, allow_duplicate: bool = False,
    skip_invalid: bool = False, campaign_id: int = DEFAULT_CAMPAIGN_ID, columns: str = "",
) -> ImportJob:
    """Queue a new job that imports a failed job's kept file with these choices; raise ImportFileGone when it is not kept.

    The new job gets a link to the same file (a copy where links cannot be made), so each job's file
    lives and goes by its own job's outcome.
    """
    gone = ImportFileGone(f"the file of import job {job.pk} ({job.filename}) is no longer kept: upload it again")
    if job.file_kept_until is None:
        raise gone

    def write(path: Path) -> None:
        try:
            _file_link(job.path, path)
        except FileNotFoundError:  # the reaper removed it meanwhile
            raise gone from None

    return _job_queue(kind=kind, filename=job.filename, user=user, write=write,
                      options=_job_options(required_labels, allow_duplicate, skip_invalid, campaign_id, columns, retry_of=job.pk))


def _job_options(required_labels, allow_duplicate, skip_invalid, campaign_id, columns, *, retry_of: int | None = None) -> dict:
    options = {"required_labels": required_labels, "allow_duplicate": allow_duplicate, "skip_invalid": skip_invalid,
               "campaign_id": campaign_id, "columns": columns}
    return options if retry_of is None else {**options, "retry_of": retry_of}


def _job_queue(*, kind: str, filename: str, user, write: Callable[[Path], None], options: dict) -> ImportJob:
    with transaction.atomic():
        job = ImportJob.objects.create(kind=kind, filename=filename[:255], created_by=user, options=options)
        write(job.path)
        events.import_job_queued(job_id=job.pk)
    return job


def import_job_execute(*, job_id: int, should_stop: Callable[[], bool] | None = None) -> None:
    """Run one queued import job to done or failed; a redelivered message, or a missing job, does nothing.

    ``should_stop()`` answering True (its worker is stopping; asked after the file is read and after each chunk) ends the
    import there: its staged rows are removed, and the job, its file kept, is queued again to start afresh.
    """
    now = timezone.now()
    if not ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.PARSING, started_at=now, heartbeat_at=now
    ):
        return
    job = ImportJob.objects.get(pk=job_id)
    try:
        data = job.path.read_bytes()
        outcome = import_file(
            kind=job.kind, data=data, filename=job.filename, user=job.created_by,
            required_labels=job.options.get("required_labels"), allow_duplicate=bool(job.options.get("allow_duplicate")),
            skip_invalid=bool(job.options.get("skip_invalid")), campaign_id=job.options.get("campaign_id", DEFAULT_CAMPAIGN_ID),
            columns=job.options.get("columns") or "", on_progress=lambda status, progress: _job_progress(job_id, status, progress, should_stop),
        )
    except ImportStopped:
        logger.info("import job %s: the worker is stopping; what it staged is removed and the job waits in the queue again", job_id)
        with transaction.atomic():
            ImportJob.objects.filter(pk=job_id).update(status=ImportJob.Status.QUEUED, progress={}, started_at=None, heartbeat_at=None)
            events.import_job_queued(job_id=job_id)
        return
    except ImportValidationError as exc:
        _job_finish(job_id, status=ImportJob.Status.FAILED, errors=[str(e) for e in exc.errors], error_total=exc.total)
    except ImportRefused as exc:
        _job_finish(job_id, status=ImportJob.Status.FAILED, errors=[str(exc)], error_total=1)
    except OSError as exc:
        _job_finish(job_id, status=ImportJob.Status.FAILED, errors=[f"cannot read the uploaded file: {exc.strerror or exc}"], error_total=1)
    except Exception as exc:  # recorded on the job, so its page says why instead of spinning forever
        logger.exception("import job %s failed", job_id)
        _job_finish(job_id, status=ImportJob.Status.FAILED, errors=[f"the import stopped ({type(exc).__name__}: {exc}); nothing was imported"],
                    error_total=1)
    else:
        _job_finish(job_id, status=ImportJob.Status.DONE, import_batch=outcome.batch, skipped=[str(e) for e in outcome.skipped],
                    left_out=outcome.left_out)
        job.path.unlink(missing_ok=True)
        return
    if not settings.IMPORT_KEEP_FAILED_HOURS:
        job.path.unlink(missing_ok=True)


def import_file(
    *, kind: str, data: bytes, filename: str, user=None, required_labels: int | None = None, source: str | None = None,
    allow_duplicate: bool = False, skip_invalid: bool = False, on_progress: Progress | None = None, campaign_id: int = DEFAULT_CAMPAIGN_ID,
    columns: str = "",
) -> ImportOutcome:
    """Import a prompts or preferences file in chunks: all of it (less skipped rows) or nothing.

    Every row is parsed and checked before anything is written; ImportValidationError lists the
    problems. With ``skip_invalid`` the valid rows are imported and the invalid ones returned.
    ``columns`` is a column mapping (services.import_columns) for a file of another shape.
    """
    progress = on_progress or (lambda status, counts: None)
    skipped: list[LineError] | None = [] if skip_invalid else None
    try:
        mapping = column_mapping_parse(columns, kind=kind)
    except ColumnMappingError as exc:
        raise ImportValidationError([LineError(0, "", f"the column mapping: {exc}")], 1) from None
    data, filename = _unpacked(data, filename)
    parse = parse_prompts if kind == ImportBatch.Kind.PROMPTS else parse_preferences
    left_out: list[str] = []
    records = parse(data, filename=filename, skipped=skipped, mapping=mapping, left_out=left_out)
    progress(ImportJob.Status.STAGING, {"records": len(records), "staged": 0})
    sha256 = hashlib.sha256(data).hexdigest()
    batch = batch_create(kind=kind, filename=filename, sha256=sha256, user=user, allow_duplicate=allow_duplicate, published=False,
                         campaign_id=campaign_id)
    try:
        if kind == ImportBatch.Kind.PROMPTS:
            _prompts_stage_and_publish(batch=batch, records=records, required_labels=required_labels,
                                       source=source or f"import:{filename}", progress=progress)
        else:
            _preferences_stage_and_publish(batch=batch, records=records, sha256=sha256, filename=filename, progress=progress)
    except BaseException:  # Ctrl-C in a command too: nothing half-imported stays behind
        try:
            staged_remove(batch_id=batch.pk)
        except Exception:  # the original error says more; what stays is unpublished, so unseen
            logger.exception("could not remove the rows staged by import batch %s", batch.pk)
        raise
    return ImportOutcome(batch=batch, skipped=skipped or [], left_out=left_out)


def _unpacked(data: bytes, filename: str) -> tuple[bytes, str]:
    """Return a gzip-compressed file's content (known by its first bytes, whatever its name) and its name without ".gz";
    any other file as it is. A gzip file that is broken, cut short or unpacks past IMPORT_MAX_UNPACKED_BYTES is a problem
    of the file (ImportValidationError), found before anything is written."""
    if not data.startswith(b"\x1f\x8b"):
        return data, filename
    limit, parts, size, rest = settings.IMPORT_MAX_UNPACKED_BYTES, [], 0, data
    try:
        while True:  # a gzip file may hold several members, one after another (and zeros after the last)
            member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            parts.append(member.decompress(rest, limit + 1 - size))
            size += len(parts[-1])
            if size > limit:
                problem = f"the file unpacks to over {limit:,} bytes (IMPORT_MAX_UNPACKED_BYTES)"
                raise ImportValidationError([LineError(0, "", problem)], 1)
            if not member.eof:
                raise zlib.error("it ends before its end marker: cut short?")
            rest = member.unused_data
            if not rest.strip(b"\0"):  # only what follows a member is read for zeros, never the whole file again
                break
    except zlib.error as exc:
        raise ImportValidationError([LineError(0, "", f"cannot read the file as gzip ({exc})")], 1) from None
    return b"".join(parts), filename.removesuffix(".gz").removesuffix(".GZ")


def _prompts_stage_and_publish(*, batch: ImportBatch, records: Sequence, required_labels: int | None, source: str, progress: Progress) -> None:
    counts = {"prompts": 0, "responses": 0, "comparisons": 0, "awaiting_generation": 0}
    for chunk in _paced(_chunks(records)):
        with transaction.atomic():
            written = prompt_rows_write(batch=batch, records=chunk, required_labels=required_labels, source=source,
                                        status=Comparison.Status.STAGED)
        counts = {key: counts[key] + written[key] for key in counts}
        progress(ImportJob.Status.STAGING, {"records": len(records), "staged": counts["prompts"]})
    progress(ImportJob.Status.PUBLISHING, {"records": len(records), "staged": counts["prompts"]})
    with transaction.atomic():
        _batch_publish(batch=batch, counts=counts)
        opened = Comparison.objects.filter(import_batch=batch, status=Comparison.Status.STAGED).update(status=Comparison.Status.OPEN)
        if opened:
            events.comparisons_supplied(count=opened, campaign_id=batch.campaign_id)


def _preferences_stage_and_publish(*, batch: ImportBatch, records: Sequence, sha256: str, filename: str, progress: Progress) -> None:
    chosen_first = chosen_first_draw(sha256=sha256, n=len(records))
    comparison_ids: list[int] = []
    size = settings.IMPORT_CHUNK_RECORDS
    for start in _paced(range(0, len(records), size)):
        end = start + size
        with transaction.atomic():
            staged = preference_pairs_write(batch=batch, records=records[start:end], chosen_first=chosen_first[start:end],
                                            filename=filename, staged=True)
        comparison_ids.extend(c.pk for c in staged)
        progress(ImportJob.Status.STAGING, {"records": len(records), "staged": len(comparison_ids)})
    progress(ImportJob.Status.PUBLISHING, {"records": len(records), "staged": len(comparison_ids)})
    # The labels are written here, not staged: every reader of labels would otherwise have to skip them.
    with transaction.atomic():
        _batch_publish(batch=batch, counts={"prompts": len(comparison_ids), "comparisons": len(comparison_ids), "labels": len(comparison_ids)})
        now = timezone.now()
        quality_tally_reopen_after_commit(completed_at=now)  # complete when this transaction commits, perhaps after a close passed them
        Comparison.objects.filter(import_batch=batch, status=Comparison.Status.STAGED).update(status=Comparison.Status.COMPLETE, label_count=1,
                                                                                            completed_at=now)
        preference_labels_write(batch=batch, comparison_ids=comparison_ids, records=records, chosen_first=chosen_first)


def _batch_publish(*, batch: ImportBatch, counts: dict[str, int]) -> None:
    batch.published = True
    batch.counts = counts
    batch.save(update_fields=["published", "counts"])


def import_jobs_reap(*, now: datetime | None = None) -> int:
    """Fail jobs whose worker went silent, re-send ones still queued, remove abandoned staging and the files no job keeps;
    return jobs failed.

    A job claimed by a worker that died stays "staging" forever otherwise, and its staged rows,
    unseen but kept, with it. Re-sending a queued job is harmless: a worker claims it once.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.IMPORT_STALE_SECONDS)
    running = (ImportJob.Status.PARSING, ImportJob.Status.STAGING, ImportJob.Status.PUBLISHING)
    stale = list(ImportJob.objects.filter(status__in=running, heartbeat_at__lt=cutoff).values_list("pk", flat=True))
    for job_id in stale:
        _job_finish(job_id, status=ImportJob.Status.FAILED, error_total=1,
                    errors=["the worker importing this file stopped (it died or was restarted); nothing was imported: try again"])
    import_files_expire(now=now)
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True):
        events.import_job_queued(job_id=job_id)
    abandoned = (ImportBatch.objects.filter(published=False, created_at__lt=cutoff).annotate(last=Max("prompts__created_at"))
                 .filter(Q(last__isnull=True) | Q(last__lt=cutoff)).values_list("pk", flat=True))
    for batch_id in list(abandoned):
        staged_remove(batch_id=batch_id)
    return len(stale)


def import_files_expire(*, now: datetime | None = None) -> int:
    """Remove the files under IMPORT_DIR that no job keeps: a done job's, a failed job's past IMPORT_KEEP_FAILED_HOURS, and,
    once IMPORT_STALE_SECONDS old, one with no job or half-written (a job's file is written before its row commits); return
    how many."""
    folder = Path(settings.IMPORT_DIR)
    if not folder.is_dir():
        return 0
    now = now or timezone.now()
    files = {int(p.name): p for p in folder.iterdir() if p.name.isdigit()}
    kept_since = now - timedelta(hours=settings.IMPORT_KEEP_FAILED_HOURS)
    jobs = ImportJob.objects.filter(pk__in=list(files))
    keep = set(jobs.filter(~Q(status__in=ImportJob.FINISHED) | Q(status=ImportJob.Status.FAILED, finished_at__gt=kept_since))
               .values_list("pk", flat=True))
    known = set(jobs.values_list("pk", flat=True))

    def old(path: Path) -> bool:  # ctime: a link made for a retried job is new, though its content is not
        try:
            return now.timestamp() - path.stat().st_ctime > settings.IMPORT_STALE_SECONDS
        except FileNotFoundError:  # removed meanwhile
            return False

    gone = [p for pk, p in files.items() if pk not in keep and (pk in known or old(p))]
    gone += [p for p in folder.glob("*.part") if old(p)]
    for path in gone:
        path.unlink(missing_ok=True)
    return len(gone)


def staged_remove(*, batch_id: int) -> None:
    """Delete what an unpublished import staged, a chunk per transaction, then its batch; a published one stays."""
    if not ImportBatch.objects.filter(pk=batch_id, published=False).exists():
        return
    ids = list(Prompt.objects.filter(import_batch_id=batch_id).order_by("pk").values_list("pk", flat=True))
    for chunk in _chunks(ids):
        with transaction.atomic():
            Comparison.objects.filter(prompt_id__in=chunk).delete()
            Response.objects.filter(prompt_id__in=chunk).delete()
            Prompt.objects.filter(pk__in=chunk).delete()
    ImportBatch.objects.filter(pk=batch_id, published=False).delete()


def _chunks(items: Sequence) -> list[Sequence]:
    size = settings.IMPORT_CHUNK_RECORDS
    return [items[i : i + size] for i in range(0, len(items), size)]


def _paced(items: Sequence) -> Iterator:
    """Yield the items, pausing between them, so others waiting for the write lock get a turn."""
    for i, item in enumerate(items):
        if i and settings.IMPORT_CHUNK_PAUSE_SECONDS:
            time.sleep(settings.IMPORT_CHUNK_PAUSE_SECONDS)
        yield item


def _job_progress(job_id: int, status: str, progress: dict, should_stop: Callable[[], bool] | None = None) -> None:
    if should_stop is not None and should_stop():
        raise ImportStopped(f"import job {job_id} stopped: its worker is stopping")
    ImportJob.objects.filter(pk=job_id).update(status=status, progress=progress, heartbeat_at=timezone.now())


def _job_finish(job_id: int, *, status: str, errors: list[str] = (), error_total: int = 0, skipped: list[str] = (),
                import_batch: ImportBatch | None = None, left_out: list[str] = ()) -> None:
    ImportJob.objects.filter(pk=job_id).update(status=status, errors=list(errors), error_total=error_total, skipped=list(skipped),
                                               import_batch=import_batch, left_out=list(left_out), finished_at=timezone.now())


def _file_link(source: Path, path: Path) -> None:
    """Give ``path`` the content of ``source``: a hard link, else (another file system) a copy, written as ``_file_write`` does."""
    try:
        os.link(source, path)
    except FileNotFoundError:
        raise
    except OSError:
        _file_write(path, source.read_bytes())


def _file_write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)
