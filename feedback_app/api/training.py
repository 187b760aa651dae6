"""API endpoints of the learning loop: training runs, scoring, sample replies, version activation.

Each campaign has its own lines: the unscoped paths are the default campaign's, the same paths
under /api/v1/campaigns/<slug>/ that campaign's; another campaign's run or version is as good as missing (404).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from feedback_app.api.permissions import CampaignScopedView, IsResearcher
from feedback_app.api.schema import errors
from feedback_app.api.serializers import (
    GenerateRequestSerializer,
    GenerateSerializer,
    ScoreRequestSerializer,
    ScoreSerializer,
    TrainingRunRequestSerializer,
    TrainingRunSerializer,
)
from feedback_app.models import PolicyVersion, RewardModelVersion, TrainingRun
from feedback_app.selectors.training import version_by_name
from feedback_app.selectors.training_runs import training_run_get, training_runs_recent
from feedback_app.services.generation import GenerationUnavailable, NoRewardModel, PolicyNotFound, PolicyPruned, policy_replies_remote
from feedback_app.services.scoring import ScoringUnavailable, responses_score_remote
from feedback_app.services.training_runs import training_run_get_or_request
from feedback_app.services.versions import VersionPruned, version_make_active

SCORE_TIMEOUT_SECONDS = 60


class TrainingRunsView(CampaignScopedView):
    permission_classes = [IsResearcher]
    throttle_scope = "write"

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(summary="List recent training runs", responses={200: TrainingRunSerializer(many=True), **errors(401, 403)})
    def get(self, request: Request) -> Response:
        return Response([TrainingRunSerializer.from_run(run) for run in training_runs_recent(limit=50, campaign_id=request.campaign.pk)])

    @extend_schema(
        summary="Queue a training run, or return the one of that kind already queued",
        request=TrainingRunRequestSerializer,
        responses={201: TrainingRunSerializer, 200: OpenApiResponse(TrainingRunSerializer, description="A run of that kind was queued already: that run."),
                   **errors(400, 401, 403, 429)},
    )
    def post(self, request: Request) -> Response:
        serializer = TrainingRunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run, created = training_run_get_or_request(kind=serializer.validated_data["kind"], trigger=TrainingRun.Trigger.API, user=request.user,
                                                   campaign_id=request.campaign.pk)
        return Response(TrainingRunSerializer.from_run(run), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TrainingRunView(CampaignScopedView):
    permission_classes = [IsResearcher]

    @extend_schema(summary="A training run, with its progress", responses={200: TrainingRunSerializer, **errors(400, 401, 403, 404, e400="run_id is out of range.")})
    def get(self, request: Request, run_id: int) -> Response:
        run = training_run_get(run_id=run_id)
        if run is None or run.campaign_id != request.campaign.pk:
            return Response({"detail": f"training run {run_id} does not exist"}, status=status.HTTP_404_NOT_FOUND)
        return Response(TrainingRunSerializer.from_run(run))


class ScoreView(CampaignScopedView):
    permission_classes = [IsResearcher]
    throttle_scope = "score"

    @extend_schema(
        summary="Score responses with the active reward model",
        request=ScoreRequestSerializer,
        responses={200: ScoreSerializer, **errors(400, 401, 403, 429),
                   503: OpenApiResponse(description="No reward model is active, or no scoring worker answered.")},
    )
    def post(self, request: Request) -> Response:
        serializer = ScoreRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            result = responses_score_remote(prompt=data["prompt"], context=data["context"], responses=data["responses"], timeout=SCORE_TIMEOUT_SECONDS,
                                            campaign_id=request.campaign.pk)
        except ScoringUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(result)


class PolicyGenerateView(CampaignScopedView):
    permission_classes = [IsResearcher]
    throttle_scope = "generate"

    @extend_schema(
        summary="One reply per prompt from a policy version, sampled or reranked (nothing is stored)",
        request=GenerateRequestSerializer,
        responses={200: GenerateSerializer, **errors(400, 401, 403, 404, 409, 429, e404="No policy version of that name.",
                                                     e409="The version was pruned (its weights are gone), or rerank was asked for "
                                                          "and no reward model is active."),
                   503: OpenApiResponse(description="No generation worker answered in time (queue 'score').")},
    )
    def post(self, request: Request, name: str) -> Response:
        serializer = GenerateRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = version_by_name(model=PolicyVersion, name=name)
        if version is not None and version.campaign_id != request.campaign.pk:
            return Response({"detail": f"no policy version named {name!r} in campaign {request.campaign.slug}"}, status=status.HTTP_404_NOT_FOUND)
        try:
            result = policy_replies_remote(policy_name=name, **serializer.validated_data, timeout=settings.GENERATE_TIMEOUT_SECONDS)
        except PolicyNotFound as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        except (PolicyPruned, NoRewardModel) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except GenerationUnavailable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(result)


class VersionActivateView(CampaignScopedView):
    permission_classes = [IsResearcher]
    throttle_scope = "write"
    MODELS = {"reward-models": RewardModelVersion, "policies": PolicyVersion}

    @extend_schema(summary="Make a version the active one (promote a candidate or roll back)", request=None,
                   parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(MODELS))],
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The version is active."),
                              **errors(401, 403, 404, 409, 429, e404="No version of that kind and name.", e409="The version was pruned: its weights are gone.")})
    def post(self, request: Request, kind: str, name: str) -> Response:
        model = self.MODELS.get(kind)
        version = version_by_name(model=model, name=name) if model else None
        if version is None or version.campaign_id != request.campaign.pk:
            return Response({"detail": f"no {kind} version named {name!r}"}, status=status.HTTP_404_NOT_FOUND)
        try:
            action = version_make_active(version=version, user=request.user, reason="API request")
        except VersionPruned as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"name": version.name, "status": "active", "action": action})
