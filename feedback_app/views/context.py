"""Template context shared by every page."""

from django.http import HttpRequest

from feedback_app.models import CampaignMember, Role
from feedback_app.selectors.accounts import user_role
from feedback_app.selectors.campaigns import campaign_default, campaign_role


def studio(request: HttpRequest) -> dict:
    """Return what the navigation needs: the viewer's role in the campaign the page belongs to (the default one
    outside any), that campaign's URL prefix, and whether the viewer works in campaigns to pick from."""
    user = getattr(request, "user", None)
    role = user_role(user=user) if user is not None else None
    if role is None:
        return {"studio_role": ""}
    campaign = getattr(request, "campaign", None) or campaign_default()
    here = campaign_role(user=user, campaign=campaign)
    return {"studio_role": here.value if here else "", "nav_base": "/" if campaign.is_default else f"/c/{campaign.slug}/",
            "nav_campaigns": role == Role.ADMIN or CampaignMember.objects.filter(user=user).exclude(campaign=campaign).exists()}
