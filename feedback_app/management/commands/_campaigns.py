"""Shared by the commands that work in one campaign (``--campaign SLUG``; default: the default campaign)."""

from django.core.management.base import CommandError

from feedback_app.models import Campaign
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors.campaigns import campaign_by_slug

HELP = f"The campaign's slug (default: {DEFAULT_CAMPAIGN_SLUG})."


def add_campaign_argument(parser) -> None:
    parser.add_argument("--campaign", default=DEFAULT_CAMPAIGN_SLUG, metavar="SLUG", help=HELP)


def campaign_named(slug: str) -> Campaign:
    """Return the campaign ``slug``, or raise CommandError naming the campaigns there are."""
    campaign = campaign_by_slug(slug=slug)
    if campaign is None:
        known = ", ".join(Campaign.objects.order_by("id").values_list("slug", flat=True)) or DEFAULT_CAMPAIGN_SLUG
        raise CommandError(f"no campaign {slug!r}; there are: {known}")
    return campaign
