"""The error answers each documented operation lists, so that the schema says what can come back."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

DESCRIPTIONS = {
    400: "A field or parameter is invalid (or the body is not acceptable JSON); the body names it.",
    401: "No credentials, or a token or session that is not valid.",
    403: "Your role does not allow this.",
    404: "No such object.",
    409: "The request conflicts with the current state; the body says how.",
    429: "Too many requests; Retry-After says how many seconds to wait.",
    503: "A worker this needs did not answer.",
}


def errors(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Return extend_schema responses for ``codes``; ``e404="..."`` overrides one description."""
    return {code: OpenApiResponse(OpenApiTypes.OBJECT, description=descriptions.get(f"e{code}", DESCRIPTIONS[code])) for code in codes}


AUTHENTICATED = (400, 401, 403)  # 400: every endpoint parses a JSON body or parameters it may get


class StudioSchema(AutoSchema):
    """The studio's schema: an operation under /api/v1/campaigns/{campaign_slug}/ may also answer 404 (no such campaign);
    a view's ``operation_verb`` names its operations in place of the method's ("index" for a listing of links)."""

    def get_operation_id(self):
        operation_id = super().get_operation_id()
        verb = getattr(self.view, "operation_verb", None)
        return operation_id.rsplit("_", 1)[0] + f"_{verb}" if verb else operation_id

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if "{campaign_slug}" in self.path and "404" not in responses:
            responses["404"] = {"content": {"application/json": {"schema": {"type": "object", "additionalProperties": {}}}},
                                "description": "No such campaign."}
        if self.method in ("POST", "PUT", "PATCH") and "413" not in responses:  # feedback_app.api.exceptions.BodyTooLarge
            responses["413"] = {"content": {"application/json": {"schema": {"type": "object", "additionalProperties": {}}}},
                                "description": "The body is over DATA_UPLOAD_MAX_MEMORY_SIZE, the most the API reads; the body says how much."}
        return responses


class NonEmptyListBodySchema(StudioSchema):
    """A view's schema whose JSON list body must hold at least one item (drf-spectacular cannot say it of many=True)."""

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body:
            body["content"]["application/json"]["schema"]["minItems"] = 1
        return body
