"""manage.py import_preferences: import already-labelled pairs (TRL, HH or CSV)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.management.commands._files import add_columns_argument, columns_checked, file_read, left_out_line
from feedback_app.services.import_jobs import import_file
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import ImportRefused


class Command(BaseCommand):
    help = ("Import already-labelled pairs: TRL {prompt, chosen, rejected} or HH {chosen, rejected} JSONL (.gz too), or CSV; "
            "all of them or nothing, unless --skip-invalid.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        add_campaign_argument(parser)
        add_columns_argument(parser)
        parser.add_argument("--allow-duplicate", action="store_true", help="Import a file whose content was imported before.")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="Import the usable pairs and list each skipped line with its reason (identical replies, say).")

    def handle(self, *args, file: Path, campaign: str, allow_duplicate: bool, skip_invalid: bool, columns: str, **options):
        columns = columns_checked(columns, kind="preferences")
        data = file_read(file)
        try:  # a gzip-compressed file (.gz) is unpacked by the import, as an upload is
            outcome = import_file(kind="preferences", campaign_id=campaign_named(campaign).pk, data=data, filename=file.name,
                                  allow_duplicate=allow_duplicate, skip_invalid=skip_invalid, columns=columns)
        except (ImportValidationError, ImportRefused) as exc:
            raise CommandError(f"{file}: nothing was imported. {exc}") from None
        for problem in outcome.skipped:
            self.stderr.write(f"skipped {problem}")
        self.stdout.write(self.style.SUCCESS(
            f"Imported {outcome.batch.counts['labels']} labelled pairs from {file} (import batch {outcome.batch.pk})."
            + (f" Skipped {len(outcome.skipped)} invalid line(s)." if outcome.skipped else "")
            + left_out_line(outcome.left_out)
        ))
