"""Role and campaign membership checks for HTML views."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404

from feedback_app.models import Role
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG
from feedback_app.selectors.accounts import user_has_role
from feedback_app.selectors.campaigns import campaign_by_slug, campaign_role


def role_required(*roles: Role):
    """Let through users with one of ``roles`` in the studio; send others to log in, or refuse them (403)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_role(user=request.user, roles=roles):
                raise PermissionDenied("your role does not allow this page")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def campaign_required(*roles: Role):
    """Let through members of the campaign named in the URL (``campaign_slug``; none: the default campaign) whose
    role there is one of ``roles``; the view gets ``request.campaign``. A missing campaign is 404; a non-member is
    refused (403), except that on the default campaign's label page a member of other campaigns is sent to pick one."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, campaign_slug: str = DEFAULT_CAMPAIGN_SLUG, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            campaign = campaign_by_slug(slug=campaign_slug)
            if campaign is None:
                raise Http404(f"no campaign {campaign_slug!r}")
            role = campaign_role(user=request.user, campaign=campaign)
            if role is None:
                raise PermissionDenied(f"you are not a member of campaign {campaign.slug}")
            if role not in roles:
                raise PermissionDenied("your role does not allow this page")
            request.campaign = campaign
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
