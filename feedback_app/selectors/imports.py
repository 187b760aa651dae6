"""Reading background import jobs."""

from __future__ import annotations

from feedback_app.models import ImportJob


def import_job_get(*, job_id: int) -> ImportJob | None:
    """Return the import job with its batch, or None when there is no such job."""
    return ImportJob.objects.select_related("import_batch").filter(pk=job_id).first()
