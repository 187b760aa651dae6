"""Where a user lands."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from feedback_app.models import Role
from feedback_app.selectors.accounts import user_role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send raters to the labeling page and staff to the dashboard."""
    role = user_role(user=request.user)
    if role in (Role.RESEARCHER, Role.ADMIN):
        return redirect("dashboard")
    return redirect("label")
