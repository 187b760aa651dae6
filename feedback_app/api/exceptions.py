"""The API's error answers: every refusal of input is a 400 naming the field, a body over the limit a 413, and every 404 is JSON."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


def api_exception_handler(exc, context):
    """Answer like DRF does, turn a model or service ValidationError into a 400 naming its fields, and a body over
    DATA_UPLOAD_MAX_MEMORY_SIZE into a 413 (Django would answer an HTML page)."""
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge(f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes, the most this API reads")
    elif isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages})
    return drf_exception_handler(exc, context)


def api_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """Answer a URL no route matches with JSON under /api/, and with the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no API endpoint at {request.path}"}, status=404)
    return page_not_found(request, exception)
