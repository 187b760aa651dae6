"""API endpoints: check, call a service or selector, respond."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback_app.api.label_direct import Plain, direct_or, label_read, label_settle
from feedback_app.api.permissions import CampaignScopedView, HasStudioRole, IsAdmin, IsLabeler, IsResearcher
from feedback_app.api.schema import NonEmptyListBodySchema, errors
from feedback_app.api.serializers import (
    CampaignSerializer,
    ExportQuerySerializer,
    GuidelinesSerializer,
    ImportBatchSerializer,
    ImportQuerySerializer,
    LabelAndNextSerializer,
    LabelQuerySerializer,
    LabelRequestSerializer,
    LabelSerializer,
    NextComparisonSerializer,
    PromptInSerializer,
    next_wanted,
)
from feedback_app.rendering import markdown_html
from feedback_app.selectors.campaigns import campaign_role, campaigns_for_user
from feedback_app.selectors.exports import CONTENT_TYPES, ExportFilters, export_filename, export_filter_problems
from feedback_app.services.exports import export_stream
from feedback_app.services.import_parsing import ImportValidationError
from feedback_app.services.imports import ImportRefused, prompts_import_api
from feedback_app.services.labeling import (
    ComparisonNotFound,
    LabelConflict,
    NotLeased,
    assignment_skip,
    label_record,
    label_record_and_lease_next,
)
from feedback_app.services.leasing import assignment_lease_next
from feedback_app.views.streaming import streaming_download


class NextComparisonView(CampaignScopedView):
    permission_classes = [IsLabeler]

    @extend_schema(
        summary="Lease the next comparison",
        responses={200: NextComparisonSerializer, 204: OpenApiResponse(description="Nothing is left for this rater."), **errors(401, 403)},
    )
    def get(self, request: Request) -> Response:
        body, answer_status = next_answer(request, ())
        return Response(body, status=answer_status)

    @classmethod
    def as_view(cls, **initkwargs):
        """DRF's view, with the plain call served beside it (``label_direct``)."""
        return direct_or(super().as_view(**initkwargs), Plain(method="GET", answer=next_answer))


def next_answer(request, read: tuple) -> tuple[dict | None, int]:
    """Lease ``request.user`` their next comparison in ``request.campaign``; return the answer's body (None: no content) and status."""
    assignment = assignment_lease_next(rater=request.user, campaign=request.campaign)
    if assignment is None:
        return None, status.HTTP_204_NO_CONTENT
    return NextComparisonSerializer.from_assignment(assignment), status.HTTP_200_OK


class CampaignsView(APIView):
    permission_classes = [HasStudioRole]

    @extend_schema(summary="The campaigns you work in", responses={200: CampaignSerializer(many=True), **errors(401, 403)})
    def get(self, request: Request) -> Response:
        rows = []
        for campaign in campaigns_for_user(user=request.user):
            role = campaign_role(user=request.user, campaign=campaign)
            rows.append({"slug": campaign.slug, "name": campaign.name, "state": campaign.state, "role": role,
                         "guidelines_version": campaign.guidelines_version, "label_target": campaign.label_target})
        return Response(rows)


class GuidelinesView(CampaignScopedView):
    permission_classes = [IsLabeler]

    @extend_schema(summary="The rater guidelines", responses={200: GuidelinesSerializer, **errors(401, 403)})
    def get(self, request: Request) -> Response:
        config = request.campaign
        return Response({"version": config.guidelines_version, "markdown": config.guidelines, "html": markdown_html(config.guidelines)})


class LabelView(CampaignScopedView):
    permission_classes = [IsLabeler]
    throttle_scope = "label"

    @extend_schema(
        summary="Label a leased comparison",
        description="With ?next=1 the answer also carries the rater's next lease as \"next\" (null when none is left), so a rater "
                    "needs one call per label. Retrying the same label returns it (200) with the same next lease.",
        parameters=[LabelQuerySerializer],
        request=LabelRequestSerializer,
        responses={
            201: LabelAndNextSerializer,
            200: OpenApiResponse(LabelAndNextSerializer, description="The same label was submitted before; it is returned."),
            **errors(400, 401, 403, 404, 429, e404="No such comparison."),
            409: OpenApiResponse(description="A different label exists, or the comparison is not leased to you."),
        },
    )
    def post(self, request: Request, comparison_id: int) -> Response:
        wants_next = next_wanted(request.query_params.get("next"))
        submission = LabelRequestSerializer.read(request.data, campaign=request.campaign)
        body, answer_status = label_answer(request, submission, wants_next, comparison_id=comparison_id)
        return Response(body, status=answer_status)

    @classmethod
    def as_view(cls, **initkwargs):
        """DRF's view, with the plain call served beside it (``label_direct``)."""
        plain = Plain(method="POST", read=label_read, settle=label_settle, throttle_scope=cls.throttle_scope,
                      answer=lambda request, settled, **kwargs: label_answer(request, *settled, **kwargs))
        return direct_or(super().as_view(**initkwargs), plain)


def label_answer(request, submission, wants_next: bool, *, comparison_id: int) -> tuple[dict, int]:
    """Record the label ``request``'s user submits on ``comparison_id`` (and lease their next where ``wants_next``); return
    the answer's body and status. ``request.user`` and ``request.campaign`` have passed the label endpoint's checks."""
    asked = {"rater": request.user, "campaign": request.campaign, "comparison_id": comparison_id, "submission": submission}
    try:
        if wants_next:  # the rater's current lease if they hold one, so a retry gets the same next
            label, created, following = label_record_and_lease_next(**asked)
        else:
            label, created = label_record(**asked)
    except ComparisonNotFound as exc:
        return {"detail": str(exc)}, status.HTTP_404_NOT_FOUND
    except LabelConflict as exc:
        return {"detail": str(exc), "label": LabelSerializer.from_label(exc.label)}, status.HTTP_409_CONFLICT
    except NotLeased as exc:
        return {"detail": str(exc)}, status.HTTP_409_CONFLICT
    body = LabelSerializer.from_label(label)
    if wants_next:
        body["next"] = NextComparisonSerializer.from_assignment(following) if following else None
    return body, status.HTTP_201_CREATED if created else status.HTTP_200_OK


class SkipView(CampaignScopedView):
    permission_classes = [IsLabeler]
    throttle_scope = "label"

    @extend_schema(summary="Give a leased comparison back", request=None,
                   responses={204: None, **errors(400, 401, 403, 404, 429, e400="comparison_id is out of range.", e404="No such URL."),
                              409: OpenApiResponse(description="Not leased to you (or no such comparison).")})
    def post(self, request: Request, comparison_id: int) -> Response:
        try:
            assignment_skip(rater=request.user, campaign=request.campaign, comparison_id=comparison_id)
        except (NotLeased, ComparisonNotFound) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportPreferencesView(CampaignScopedView):
    permission_classes = [IsResearcher]

    @extend_schema(
        summary="Download the collected preferences",
        parameters=[ExportQuerySerializer],
        responses={**{(200, content_type): OpenApiTypes.BINARY for content_type in sorted(set(CONTENT_TYPES.values()))}, **errors(400, 401, 403)},
    )
    def get(self, request: Request):
        # A plain dict: in a QueryDict DRF reads ?x= as 'not given' and applies the default.
        query = ExportQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        filters = ExportFilters.from_query(date_from=data.get("date_from"), date_to=data.get("date_to"), rater=data["rater"],
                                           tags=data["tags"], exclude_flagged=data["exclude_flagged"], label_source=data["label_source"],
                                           campaign_id=request.campaign.pk)
        problems = export_filter_problems(filters=filters)
        if problems:
            raise ValidationError({name: [message] for name, message in problems.items()})
        fmt = data["format"]
        filename = export_filename(fmt=fmt, now=timezone.now())
        return streaming_download(request._request, export_stream(fmt=fmt, filters=filters), content_type=CONTENT_TYPES[fmt], filename=filename)


class PromptsBulkView(CampaignScopedView):
    permission_classes = [IsAdmin]
    throttle_scope = "import"
    schema = NonEmptyListBodySchema()

    @extend_schema(
        summary="Import prompts (bulk); all or nothing",
        request=PromptInSerializer(many=True),
        parameters=[ImportQuerySerializer],
        responses={201: ImportBatchSerializer, **errors(400, 401, 403, 429, e400="Errors, each naming the item and field."),
                   409: OpenApiResponse(description="The same body was imported before, or the campaign is archived.")},
    )
    def post(self, request: Request) -> Response:
        # A plain dict: in a QueryDict DRF reads ?x= as 'not given' and applies the default.
        query = ImportQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        items = request.data.get("prompts") if isinstance(request.data, dict) else request.data
        if not isinstance(items, list):
            return Response({"detail": "expected a JSON list of prompts (or {\"prompts\": [...]})"}, status=status.HTTP_400_BAD_REQUEST)
        try:
            batch = prompts_import_api(items=items, user=request.user, required_labels=query.validated_data.get("required_labels"),
                                       allow_duplicate=query.validated_data["allow_duplicate"], campaign_id=request.campaign.pk)
        except ImportValidationError as exc:
            return Response({"detail": f"{exc.total} problem(s); nothing was imported", "errors": [str(e) for e in exc.errors]},
                            status=status.HTTP_400_BAD_REQUEST)
        except ImportRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"import_batch": batch.pk, "counts": batch.counts}, status=status.HTTP_201_CREATED)
