"""Imports that run in the background: the uploaded file, how far it got, and what came of it."""

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportJob(models.Model):
    """One uploaded file imported by a worker: parsed, staged in chunks, then published at once."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PARSING = "parsing", "Parsing"
        STAGING = "staging", "Staging"
        PUBLISHING = "publishing", "Publishing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINISHED = (Status.DONE, Status.FAILED)

    kind = models.CharField(max_length=16, choices=[("prompts", "Prompts"), ("preferences", "Preferences")])
    filename = models.CharField(max_length=255)
    # required_labels, allow_duplicate, skip_invalid, campaign_id, columns (a column mapping): what the uploader chose.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # {"records": parsed rows, "staged": rows written so far}
    progress = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    error_total = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True)
    # The file's columns (or JSON keys) that its column mapping did not read.
    left_out = models.JSONField(default=list, blank=True)
    import_batch = models.ForeignKey("feedback_app.ImportBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with every bit of progress; a running job silent for IMPORT_STALE_SECONDS is failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def path(self) -> Path:
        """Return where the uploaded file is kept until the job is done (a failed job's, IMPORT_KEEP_FAILED_HOURS more)."""
        return Path(settings.IMPORT_DIR) / str(self.pk)

    @property
    def file_kept_until(self):
        """Return until when a failed job's file is kept to be tried again; None when it is not (or no longer) kept."""
        if self.status != self.Status.FAILED or self.finished_at is None or not self.path.exists():
            return None
        until = self.finished_at + timedelta(hours=settings.IMPORT_KEEP_FAILED_HOURS)
        return until if until > timezone.now() else None

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    def __str__(self) -> str:
        return f"Import job {self.pk}: {self.kind} from {self.filename} ({self.status})"
