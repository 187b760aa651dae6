"""manage.py seed_demo: the demo users and prompts, once."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from feedback_app.models import ImportBatch, Role
from feedback_app.selectors.accounts import user_exists
from feedback_app.selectors.imports import import_batch_exists
from feedback_app.services.accounts import user_create
from feedback_app.services.imports import prompts_import

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "prompts.jsonl"
DEMO_USERS = (("rater", Role.RATER), ("researcher", Role.RESEARCHER), ("admin", Role.ADMIN))


class Command(BaseCommand):
    help = "Create the demo users (passwords printed once) and import the demo prompts; does nothing twice."

    def handle(self, *args, **options):
        # `make run` seeds before `serve` starts Redis and the web server, so no browser can be
        # listening yet: keep the import's pushes in this process instead of failing to send them.
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
        for username, role in DEMO_USERS:
            if user_exists(username=username):
                continue
            _, password, token = user_create(username=username, role=role)
            self.stdout.write(self.style.WARNING(f"Demo {role.value:<10} user {username!r}  password: {password}  API token: {token}"))
        data = DEMO_FILE.read_bytes()
        if import_batch_exists(filename=DEMO_FILE.name, kind=ImportBatch.Kind.PROMPTS, source="demo"):
            return
        batch = prompts_import(data=data, filename=DEMO_FILE.name, source="demo", allow_duplicate=True)
        self.stdout.write(f"Imported the demo: {batch.counts['prompts']} prompts, {batch.counts['comparisons']} comparisons.")
