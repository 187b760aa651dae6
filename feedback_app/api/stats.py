"""Everything the dashboard shows, as JSON for notebooks: /api/v1/stats/<name>/."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback_app.api.permissions import IsResearcher
from feedback_app.selectors import dashboard as board
from feedback_app.selectors.quality import agreement_over_time, agreement_summary, rater_quality, review_queue


def _review() -> dict:
    queue = review_queue()
    return {"flagged": [c.pk for c in queue["flagged"]], "disputed": [c.pk for c in queue["disputed"]]}


def _raters() -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("rater_id", "username")} for r in rater_quality().values()]


STATS = {
    "overview": lambda request: {**board.overview_counters(), "training_run": _run(board.training_run_current())},
    "labels": lambda request: board.labels_over_time(hours=_int(request, "hours", 48, 1, 24 * 90)),
    "reward-models": lambda request: board.reward_model_history(),
    "calibration": lambda request: board.calibration_active(),
    "agreement": lambda request: {**agreement_summary(), "over_time": agreement_over_time(days=_int(request, "days", 30, 1, 365))},
    "raters": lambda request: _raters(),
    "arena": lambda request: board.arena_standings(),
    "review": lambda request: _review(),
}


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name, "")
    return min(high, max(low, int(value))) if value.isdigit() else default


def _run(run) -> dict | None:
    if run is None:
        return None
    return {"id": run.pk, "kind": run.kind, "status": run.status, "progress": run.progress, "metrics": run.metrics,
            "created_at": run.created_at, "finished_at": run.finished_at}


class StatsView(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        summary="Dashboard figures as JSON",
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=list(STATS)),
                    OpenApiParameter("hours", int, description="labels: hours back"), OpenApiParameter("days", int, description="agreement: days back")],
        responses={200: OpenApiTypes.OBJECT, 404: None},
    )
    def get(self, request: Request, name: str) -> Response:
        compute = STATS.get(name)
        if compute is None:
            return Response({"detail": f"no statistics named {name!r}; try one of {', '.join(STATS)}"}, status=404)
        return Response({"name": name, "generated_at": timezone.now(), "data": compute(request)})


class StatsIndexView(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(summary="The statistics available", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        return Response({name: request.build_absolute_uri(f"{name}/") for name in STATS})
