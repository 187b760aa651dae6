"""Health endpoints for a load balancer or a supervisor, and the dashboard's process panel."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from feedback_app.models import Role
from feedback_app.selectors.health import studio_readiness
from feedback_app.views.access import role_required


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer 200 while the web process serves requests; touches neither the database nor Redis."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database, Redis and a worker of every queue answer, else 503; same report either way."""
    report = studio_readiness()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@never_cache
@require_GET
@role_required(Role.RESEARCHER, Role.ADMIN)
def processes_panel(request: HttpRequest) -> HttpResponse:
    """Render the dashboard's panel of queues and processes (polled by htmx)."""
    return render(request, "feedback_app/live.html#health", {"health": studio_readiness()})
