"""Where a user lands (and where a browser finds the icon)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe

from feedback_app.models import Role
from feedback_app.selectors.accounts import user_role
from feedback_app.selectors.campaigns import campaign_default, campaign_role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send the default campaign's raters to its label page and its staff to its dashboard; members of other
    campaigns only pick one of theirs."""
    if user_role(user=request.user) is None:
        return redirect("label")  # which refuses them
    role = campaign_role(user=request.user, campaign=campaign_default())
    if role is None:
        return redirect("campaigns")
    if role in (Role.RESEARCHER, Role.ADMIN):
        return redirect("dashboard")
    return redirect("label")


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Send browsers that ask for /favicon.ico (pages that name no icon: the admin, JSON answers) to the studio's icon."""
    return HttpResponsePermanentRedirect(static("feedback_app/favicon.svg"))
