"""Answer 503 with a clear message when the studio's storage is full, instead of a 500.

A write that fails for lack of space has rolled back (each service writes in one transaction),
so nothing acknowledged is lost and the client may simply retry; once space is back the same
processes carry on, since nothing here is cached or left half-open.
"""

from __future__ import annotations

import errno
import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30
DISK_FULL_MESSAGE = "The studio's storage is full, so nothing was saved. Try again once an operator has freed space."
_SQLSTATE_DISK_FULL = "53100"  # PostgreSQL: insufficient resources, disk full
_SQLITE_DISK_FULL = ("database or disk is full", "disk i/o error")


def is_disk_full(exc: BaseException) -> bool:
    """Return whether ``exc`` (or what caused it) says the disk is full."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(exc, "sqlstate", None) == _SQLSTATE_DISK_FULL:
            return True
        if isinstance(exc, DatabaseError) or type(exc).__module__.startswith("sqlite3"):
            if any(text in str(exc).lower() for text in _SQLITE_DISK_FULL):
                return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class DiskFullMiddleware:
    """Turn a disk-full error raised by any view into 503 with Retry-After."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_disk_full(exception):
            return None
        logger.warning("disk full while serving %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": DISK_FULL_MESSAGE}, status=503)
        else:
            response = HttpResponse(f"<!doctype html><title>Storage full</title><h1>Storage full</h1><p>{DISK_FULL_MESSAGE}</p>",
                                    status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
