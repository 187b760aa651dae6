"""Everything the dashboard shows, as JSON for notebooks: /api/v1/stats/<name>/."""

from __future__ import annotations

import dataclasses

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from feedback_app.api.permissions import CampaignScopedView, IsResearcher
from feedback_app.api.schema import errors
from feedback_app.api.serializers import StrictIntegerField
from feedback_app.selectors import dashboard as board
from feedback_app.selectors.judge_quality import ai_feedback_notice, judges_quality
from feedback_app.selectors.quality import agreement_over_time, agreement_summary, rater_quality
from feedback_app.selectors.review import review_queue


def _review(campaign_id: int) -> dict:
    queue = review_queue(campaign_id=campaign_id)
    return {"flagged": [c.pk for c in queue["flagged"]], "disputed": [c.pk for c in queue["disputed"]]}


def _raters(campaign_id: int) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("rater_id", "username")} for r in rater_quality(campaign_id=campaign_id).values()]


def _judges(campaign_id: int) -> dict:
    rows = []
    for q in judges_quality(campaign_id=campaign_id):
        judge = q["judge"]
        rows.append({**q, "judge": {"name": judge.name, "kind": judge.kind, "version": judge.version, "enabled": judge.enabled,
                                    "routing": judge.routing, "confidence_threshold": judge.confidence_threshold},
                     "trust": dataclasses.asdict(q["trust"])})
    return {"notice": ai_feedback_notice(campaign_id=campaign_id), "judges": rows}


# Each takes the validated query and the campaign's id.
STATS = {
    "overview": lambda query, c: {**board.overview_counters(campaign_id=c), "training_run": _run(board.training_run_current(campaign_id=c))},
    "labels": lambda query, c: board.labels_over_time(campaign_id=c, hours=query["hours"]),
    "agreement": lambda query, c: {**agreement_summary(campaign_id=c), "over_time": agreement_over_time(campaign_id=c, days=query["days"])},
    "raters": lambda query, c: _raters(c),
    "review": lambda query, c: _review(c),
    "reward-models": lambda query, c: board.reward_model_history(campaign_id=c),
    "calibration": lambda query, c: board.calibration_active(campaign_id=c),
    "arena": lambda query, c: board.arena_standings(campaign_id=c),
    "judges": lambda query, c: _judges(c),
}


class StatsQuerySerializer(serializers.Serializer):
    hours = StrictIntegerField(strings=True, required=False, default=48, min_value=1, max_value=24 * 90, help_text="labels: hours back")
    days = StrictIntegerField(strings=True, required=False, default=30, min_value=1, max_value=365, help_text="agreement: days back")


def _run(run) -> dict | None:
    if run is None:
        return None
    return {"id": run.pk, "kind": run.kind, "status": run.status, "progress": run.progress, "metrics": run.metrics,
            "created_at": run.created_at, "finished_at": run.finished_at}


class StatsView(CampaignScopedView):
    permission_classes = [IsResearcher]

    @extend_schema(
        summary="Dashboard figures as JSON",
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=list(STATS)), StatsQuerySerializer],
        responses={200: OpenApiTypes.OBJECT, **errors(400, 401, 403, 404, e404="No statistics of that name.")},
    )
    def get(self, request: Request, name: str) -> Response:
        compute = STATS.get(name)
        if compute is None:
            return Response({"detail": f"no statistics named {name!r}; try one of {', '.join(STATS)}"}, status=404)
        # A plain dict: in a QueryDict DRF reads ?x= as 'not given' and applies the default.
        query = StatsQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return Response({"name": name, "generated_at": timezone.now(), "data": compute(query.validated_data, request.campaign.pk)})


class StatsIndexView(CampaignScopedView):
    permission_classes = [IsResearcher]
    operation_verb = "index"

    @extend_schema(summary="The statistics available", responses={200: OpenApiTypes.OBJECT, **errors(401, 403)})
    def get(self, request: Request) -> Response:
        return Response({name: request.build_absolute_uri(f"{name}/") for name in STATS})
