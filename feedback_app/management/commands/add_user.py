"""manage.py add_user: create a user in a role, with their password and API token shown once."""

from django.core.management.base import BaseCommand, CommandError

from feedback_app.models import Role
from feedback_app.services.accounts import UserExists, user_create


class Command(BaseCommand):
    help = "Create a user in a role and print their password and API token (shown once; stored only hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--email", default="")
        parser.add_argument("--password", default=None, help="Default: a generated password, printed once.")

    def handle(self, *args, username: str, role: str, email: str, password: str | None, **options):
        if not username.strip():
            raise CommandError("the username is empty")
        try:
            user, password, token = user_create(username=username, role=Role(role), email=email, password=password)
        except UserExists as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created {role} {user.username!r}.")
        self.stdout.write(f"password: {password}")
        self.stdout.write(f"API token: {token}")
