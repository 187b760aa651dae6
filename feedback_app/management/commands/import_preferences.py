import gzip
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app import training_bridge
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import DuplicateImport, preferences_import


class Command(BaseCommand):
    help = "Import already-labelled pairs: TRL {prompt, chosen, rejected} or HH {chosen, rejected} JSONL (.gz too), or CSV."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--allow-duplicate", action="store_true", help="Import a file whose content was imported before.")

    def handle(self, *args, file: Path, allow_duplicate: bool, **options):
        try:
            data = file.read_bytes()
            if file.suffix == ".gz":
                data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        name = file.name.removesuffix(".gz")
        try:
            batch = preferences_import(data=data, filename=name, split_hh=training_bridge.split_hh_dialogue, allow_duplicate=allow_duplicate)
        except (ImportValidationError, DuplicateImport) as exc:
            raise CommandError(f"{file}: nothing was imported. {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Imported {batch.counts['labels']} labelled pairs from {file} (import batch {batch.pk})."))
