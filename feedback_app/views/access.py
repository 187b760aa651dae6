"""Role checks for HTML views."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from feedback_app.models import Role
from feedback_app.selectors.accounts import user_has_role


def role_required(*roles: Role):
    """Let through users with one of ``roles``; send others to log in, or refuse them (403)."""

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
