"""manage.py restore: replace the SQLite database with a backup (the studio stopped)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.services.backup import BackupError, database_restore


class Command(BaseCommand):
    help = ("Replace the SQLite database with a backup made by `manage.py backup` (the studio must be stopped); "
            "the current database is moved aside, not deleted.")

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="The backup file to restore.")

    def handle(self, *args, source: Path, **options):
        try:
            aside = database_restore(source=source)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"restored {source}; the previous database is at {aside}. Run `manage.py migrate` if the backup is older than this code.")
