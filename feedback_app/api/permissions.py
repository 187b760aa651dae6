"""Who may call what: a user's role in the campaign the URL names (a CampaignScopedView's slug; otherwise the default campaign).

A member of other campaigns only is refused on the unscoped endpoints, as they mean the default
campaign; a campaign that does not exist is 404. The view finds the campaign as ``request.campaign``.
"""

from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from feedback_app.models import Role
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors.accounts import user_role
from feedback_app.selectors.campaigns import campaign_by_slug, campaign_role


class CampaignScopedView(APIView):
    """A view served both unscoped (the default campaign) and under /api/v1/campaigns/<slug>/; its handlers never see the slug."""

    campaign_slug = DEFAULT_CAMPAIGN_SLUG

    def dispatch(self, request, *args, campaign_slug: str = DEFAULT_CAMPAIGN_SLUG, **kwargs):
        self.campaign_slug = campaign_slug
        return super().dispatch(request, *args, **kwargs)


class _HasRole(BasePermission):
    roles: tuple[Role, ...] = ()
    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        slug = getattr(view, "campaign_slug", DEFAULT_CAMPAIGN_SLUG)
        campaign = campaign_by_slug(slug=slug)
        if campaign is None:
            raise NotFound(f"no campaign {slug!r}")
        role = campaign_role(user=request.user, campaign=campaign, memberships=getattr(request.auth, "memberships", None))  # the token's read
        if role is None:
            self.message = f"you are not a member of campaign {campaign.slug}"
            return False
        request.campaign = campaign
        return role in self.roles


class HasStudioRole(BasePermission):
    """Any user with a role in the studio, whatever their campaigns."""

    message = "your account has no role in this studio"

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and user_role(user=request.user) is not None


class IsLabeler(_HasRole):
    roles = (Role.RATER, Role.RESEARCHER, Role.ADMIN)


class IsResearcher(_HasRole):
    roles = (Role.RESEARCHER, Role.ADMIN)
    message = "only researchers and admins may do this"


class IsAdmin(_HasRole):
    roles = (Role.ADMIN,)
    message = "only admins may do this"
