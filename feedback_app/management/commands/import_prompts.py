"""manage.py import_prompts: import prompts and any candidate responses from JSONL or CSV, all or nothing."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.management.commands._files import add_columns_argument, columns_checked, file_read, left_out_line
from feedback_app.services.import_jobs import import_file
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import ImportRefused


class Command(BaseCommand):
    help = ("Import prompts (and any candidate responses) from a JSONL or CSV file, gzip-compressed or not; all of it or nothing. "
            "Rows are written in short chunks and published at once, so raters keep working meanwhile.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        add_campaign_argument(parser)
        add_columns_argument(parser)
        parser.add_argument("--required-labels", type=int, default=None, help="Labels each comparison needs (default: LABELS_PER_COMPARISON).")
        parser.add_argument("--allow-duplicate", action="store_true", help="Import a file whose content was imported before.")
        parser.add_argument("--skip-invalid", action="store_true", help="Import the valid rows and list each skipped one with its reason.")

    def handle(self, *args, file: Path, campaign: str, required_labels: int | None, allow_duplicate: bool, skip_invalid: bool, columns: str, **options):
        if required_labels is not None and required_labels < 1:
            raise CommandError("--required-labels must be at least 1")
        columns = columns_checked(columns, kind="prompts")
        data = file_read(file)
        try:
            outcome = import_file(kind="prompts", campaign_id=campaign_named(campaign).pk, data=data, filename=file.name, required_labels=required_labels,
                                  allow_duplicate=allow_duplicate, skip_invalid=skip_invalid, columns=columns)
        except (ImportValidationError, ImportRefused) as exc:
            raise CommandError(f"{file}: nothing was imported. {exc}") from None
        for problem in outcome.skipped:
            self.stderr.write(f"skipped {problem}")
        counts = outcome.batch.counts
        self.stdout.write(self.style.SUCCESS(
            f"Imported {counts['prompts']} prompts, {counts['responses']} responses and {counts['comparisons']} comparisons "
            f"from {file} (import batch {outcome.batch.pk}); {counts['awaiting_generation']} prompts await generated responses."
            + (f" Skipped {len(outcome.skipped)} invalid row(s)." if outcome.skipped else "")
            + left_out_line(outcome.left_out)
        ))
