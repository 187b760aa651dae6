"""manage.py models_prune: apply retention to MODEL_STORE now."""

from django.core.management.base import BaseCommand

from feedback_app.services.retention import model_store_prune


class Command(BaseCommand):
    help = ("Remove the checkpoint folders of retired versions that retention does not keep (the rows stay, "
            "marked pruned), then bound the embedding cache; print what goes.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what would be removed; remove nothing.")

    def handle(self, *args, dry_run: bool, **options):
        report = model_store_prune(dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
