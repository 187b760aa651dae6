"""Numbers from URLs and query strings: ASCII digits only, and never wider than a database column.

``int()`` accepts "٣" and "²".isdigit() is true, and Django's ``<int:...>`` takes any digit string,
which the ORM then fails to bind (OverflowError on SQLite, DataError on PostgreSQL). These helpers
turn such input into a 400 that names the parameter.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from feedback_app.services.json_input import INT_MAX

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


class ParamError(ValueError):
    """A parameter is not what the endpoint takes; ``name`` says which."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def ascii_int(value: str, *, name: str, low: int = 0, high: int = INT_MAX) -> int:
    """Return ``value`` as an int if it is ASCII digits between ``low`` and ``high``; raise ParamError."""
    if not _ASCII_DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise ParamError(name, f"must be a whole number from {low} to {high} in ASCII digits, got {value[:40]!r}")
    return int(value)


class IdConverter:
    """``<id:name>``: ASCII digits; the value is checked against the column's range by PathIdsMiddleware."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        # A too-wide number still matches the route so that the answer is a 400 naming it, not a 404.
        return int(value) if len(value) <= 19 else INT_MAX + 1

    def to_url(self, value: int) -> str:
        return str(value)


class PathIdsMiddleware:
    """Refuse, with a 400 naming it, a path id no database column can hold."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        for name, value in view_kwargs.items():
            if isinstance(value, int) and value > INT_MAX:
                message = f"must be a whole number from 0 to {INT_MAX}"
                if request.path.startswith("/api/"):
                    return JsonResponse({name: [message]}, status=400)
                return HttpResponseBadRequest(f"{name} {message}.", content_type="text/plain; charset=utf-8")
        return None
