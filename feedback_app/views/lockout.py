"""The answer to a login while its account or address is locked out (django-axes calls it)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def login_locked_out(request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None) -> HttpResponse:
    """Return a 429 saying why the login is refused and when to try again."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    message = (f"Too many failed logins for this account or from this address; "
               f"logins are refused for {max(1, round(seconds / 60))} minute(s) after the last failure.")
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=429)
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response
