"""manage.py import_preferences: import already-labelled pairs (TRL, HH or CSV)."""

import gzip
import zlib
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.management.commands._campaigns import add_campaign_argument, campaign_named
from feedback_app.services.import_jobs import import_file
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import ImportRefused


class Command(BaseCommand):
    help = ("Import already-labelled pairs: TRL {prompt, chosen, rejected} or HH {chosen, rejected} JSONL (.gz too), or CSV; "
            "all of them or nothing, unless --skip-invalid.")

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        add_campaign_argument(parser)
        parser.add_argument("--allow-duplicate", action="store_true", help="Import a file whose content was imported before.")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="Import the usable pairs and list each skipped line with its reason (identical replies, say).")

    def handle(self, *args, file: Path, campaign: str, allow_duplicate: bool, skip_invalid: bool, **options):
        try:
            data = file.read_bytes()
            if file.suffix == ".gz":
                data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        name = file.name.removesuffix(".gz")
        try:
            outcome = import_file(kind="preferences", campaign_id=campaign_named(campaign).pk, data=data, filename=name, allow_duplicate=allow_duplicate, skip_invalid=skip_invalid)
        except (ImportValidationError, ImportRefused) as exc:
            raise CommandError(f"{file}: nothing was imported. {exc}") from None
        for problem in outcome.skipped:
            self.stderr.write(f"skipped {problem}")
        self.stdout.write(self.style.SUCCESS(
            f"Imported {outcome.batch.counts['labels']} labelled pairs from {file} (import batch {outcome.batch.pk})."
            + (f" Skipped {len(outcome.skipped)} invalid line(s)." if outcome.skipped else "")
        ))
