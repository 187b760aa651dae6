"""manage.py add_user: create a user in a role, with their password and API token shown once."""

from django.core.management.base import BaseCommand, CommandError

from django.db import transaction

from feedback_app.management.commands._campaigns import campaign_named
from feedback_app.models import Role
from feedback_app.services.accounts import UserExists, user_create
from feedback_app.services.campaigns import member_set


class Command(BaseCommand):
    help = "Create a user in a role and print their password and API token (shown once; stored only hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Role])
        parser.add_argument("--email", default="")
        parser.add_argument("--password", default=None, help="Default: a generated password, printed once.")
        parser.add_argument("--campaign", action="append", default=[], metavar="SLUG",
                            help="Make the user a member of this campaign in ROLE (repeatable); their role in the studio is then rater, so the admin "
                                 "site stays closed to them. Without it they work in the default campaign in ROLE.")

    def handle(self, *args, username: str, role: str, email: str, password: str | None, campaign: list[str], **options):
        if not username.strip():
            raise CommandError("the username is empty")
        campaigns = [campaign_named(slug) for slug in dict.fromkeys(campaign)]  # every name checked before anything is written
        try:
            with transaction.atomic():
                # A campaign member's role is theirs in those campaigns only: in the studio they are a rater (no admin site).
                studio_role = Role.RATER if campaigns else Role(role)
                user, password, token = user_create(username=username, role=studio_role, email=email, password=password)
                for c in campaigns:
                    member_set(campaign=c, user=user, role=Role(role))
        except UserExists as exc:
            raise CommandError(str(exc)) from None
        where = f" in campaign(s) {', '.join(c.slug for c in campaigns)}" if campaigns else ""
        self.stdout.write(f"Created {role} {user.username!r}{where}.")
        self.stdout.write(f"password: {password}")
        self.stdout.write(f"API token: {token}")
