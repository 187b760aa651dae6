"""Template context shared by every page."""

from django.http import HttpRequest

from feedback_app.selectors.accounts import user_role


def studio(request: HttpRequest) -> dict:
    """Return the viewer's role for the navigation."""
    role = user_role(user=request.user) if hasattr(request, "user") else None
    return {"studio_role": role.value if role else ""}
