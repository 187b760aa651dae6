"""manage.py backup: copy the SQLite database consistently while the studio runs."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from feedback_app.services.backup import BackupError, database_backup, model_store_archive


class Command(BaseCommand):
    help = ("Copy the SQLite database to OUT, consistently, while the studio runs (files readable by their owner "
            "only); on PostgreSQL, print the pg_dump and pg_restore commands instead.")

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="The backup file to write (must not exist).")
        parser.add_argument("--with-models", action="store_true",
                            help="Also write OUT.models.tar: the checkpoint folders of every version not pruned.")

    def handle(self, *args, out: Path, with_models: bool, **options):
        try:
            database_backup(out=out)
            self.stdout.write(f"database: {out}")
            if with_models:
                archive = out.with_name(out.name + ".models.tar")
                folders = model_store_archive(out=archive)
                self.stdout.write(f"models: {archive} ({len(folders)} checkpoint folders)")
        except BackupError as exc:
            raise CommandError(str(exc)) from None
