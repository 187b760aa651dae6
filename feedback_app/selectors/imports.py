"""Reading imports: background import jobs, and whether a file was imported before."""

from __future__ import annotations

from feedback_app.models import ImportBatch, ImportJob


def import_job_get(*, job_id: int) -> ImportJob | None:
    """Return the import job with its batch, or None when there is no such job."""
    return ImportJob.objects.select_related("import_batch").filter(pk=job_id).first()


def import_batch_exists(*, filename: str, kind: str, source: str) -> bool:
    """Return whether a batch of ``kind`` from ``filename`` with prompts of ``source`` was imported."""
    return ImportBatch.objects.filter(filename=filename, kind=kind, prompts__source=source).exists()
