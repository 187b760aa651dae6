"""manage.py campaign_create: start a campaign, from the base models or from another campaign."""

from django.core.management.base import BaseCommand, CommandError

from feedback_app.management.commands._campaigns import campaign_named
from feedback_app.services.campaigns import CampaignError, campaign_create


class Command(BaseCommand):
    help = "Create a campaign: SLUG names it in URLs (/c/SLUG/label/); --parent copies another campaign's rules and records it as the parent."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True, help="The name people see.")
        parser.add_argument("--parent", default=None, metavar="SLUG", help="Start from this campaign's rules (default: the defaults).")

    def handle(self, *args, slug: str, name: str, parent: str | None, **options):
        try:
            campaign = campaign_create(slug=slug, name=name, parent=campaign_named(parent) if parent else None)
        except CampaignError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Created campaign {campaign.slug!r} ({campaign.name}); raters label at /c/{campaign.slug}/label/."))
