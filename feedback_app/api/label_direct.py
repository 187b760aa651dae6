"""The labeling calls' plain case served without DRF's dispatch; every other call goes through DRF as before.

Most requests a studio serves are a rater's ``POST .../label/?next=1`` with a token and a small JSON
body naming a side (perhaps a strength and a time), and, in the two-call flow, ``GET .../next/``.
DRF's dispatch wraps each in its own request object and runs its authentication, permission,
throttle, content negotiation, parsing and rendering steps. Measured under load (``bench/README.md``,
session 40), serving the label call without them took 9-11% off a web process's CPU per label. Here
the plain case runs the same steps' own code (the token's check, the campaign role, the throttle,
the strict JSON reading, ``LabelRequestSerializer``'s plain reading, and the answer the DRF view
builds with the same function) without the framework around them, and answers byte for byte as
DRF would. Each endpoint says what its plain case is with a ``Plain``.

Anything else is handed to the DRF view untouched, before the service is called or the throttle
has counted the call: another method or credentials, an ``Accept`` other than JSON, a body that is
not a plain label, a token, role, campaign or ``next`` that DRF refuses. DRF then gives its own
answer (401, 403, 404, 400, 413, 415), so every refusal stays DRF's. (A valid token's use may have
been recorded by then, as DRF records it for the same call.) A throttled call is handed over too
(DRF answers 429 with its wait, counting nothing). Once the throttle has counted a call it is never
handed over.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from rest_framework import HTTP_HEADER_ENCODING
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.renderers import JSONRenderer

from feedback_app.api.authentication import TokenAuthentication
from feedback_app.api.parsers import StrictJSONParser
from feedback_app.api.permissions import IsLabeler
from feedback_app.api.serializers import next_wanted, plain_label
from feedback_app.api.throttling import ProcessScopedRateThrottle
from feedback_app.models.campaigns import DEFAULT_CAMPAIGN_SLUG

ACCEPTED = frozenset({None, "*/*", "application/json"})  # the Accept headers DRF answers with its JSON renderer, unparametrised
JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_RENDERER = JSONRenderer()
_PARSER = StrictJSONParser()
_AUTHENTICATION = TokenAuthentication()


class _Seen:
    """What DRF's permission and throttle classes read of a view."""

    def __init__(self, campaign_slug: str, throttle_scope: str | None) -> None:
        self.campaign_slug, self.throttle_scope = campaign_slug, throttle_scope


def _nothing_to_read(request) -> tuple:
    return ()


def _as_read(request, read):
    return read


@dataclass(frozen=True)
class Plain:
    """The plain case of one endpoint, served without DRF: its method; ``read(request)``, what it reads before the caller is
    known (no side effects); ``settle(request, read)``, what it reads once ``request.campaign`` is known; its throttle scope
    (None: not throttled); ``answer(request, settled, **url_kwargs)``, which gives (body or None for no content, status).
    ``read`` or ``settle`` returning None hands the call to DRF."""

    method: str
    answer: Callable
    read: Callable = _nothing_to_read
    settle: Callable = _as_read
    throttle_scope: str | None = None


def direct_or(drf_view, plain: Plain):
    """Return a view that serves ``plain``'s case itself and hands every other call to ``drf_view``, DRF's view of the same
    endpoint.

    The returned view carries ``drf_view``'s attributes, so the schema generator and the URL resolver see DRF's view.
    """
    instance = drf_view.cls(**drf_view.initkwargs)
    instance.setup(None)  # as Django's view function does before dispatch (a GET view then answers HEAD)
    allowed = ", ".join(instance.allowed_methods)

    @csrf_exempt  # as DRF's: a token call carries no cookie to forge; session calls go to DRF, which checks CSRF itself
    def view(request, *args, campaign_slug: str = DEFAULT_CAMPAIGN_SLUG, **kwargs):
        settled = _plain_call(request, plain, campaign_slug=campaign_slug)
        if settled is None:
            return drf_view(request, *args, campaign_slug=campaign_slug, **kwargs)
        body, status = plain.answer(request, settled, *args, **kwargs)
        response = _json_response(body, status)
        response["Allow"] = allowed
        return response

    for name in ("cls", "initkwargs", "view_class", "view_initkwargs"):
        if hasattr(drf_view, name):
            setattr(view, name, getattr(drf_view, name))
    view.__name__, view.__doc__ = drf_view.__name__, drf_view.__doc__
    return view


def _plain_call(request, plain: Plain, *, campaign_slug: str):
    """Return what ``plain`` settles for a call that passed DRF's checks and its throttle; None to hand the call to DRF."""
    if request.method != plain.method or request.META.get("HTTP_ACCEPT") not in ACCEPTED:
        return None
    key = _token_key(request)
    read = plain.read(request) if key is not None else None
    if read is None:
        return None
    try:
        user, token = _AUTHENTICATION.authenticate_credentials(key)
    except APIException:
        return None
    request.user, request.auth = user, token  # as DRF sets them on the request it wraps
    seen = _Seen(campaign_slug, plain.throttle_scope)
    try:
        if not IsLabeler().has_permission(request, seen):
            return None
    except APIException:
        return None
    settled = plain.settle(request, read)
    if settled is None or (plain.throttle_scope and not ProcessScopedRateThrottle().allow_request(request, seen)):
        return None
    return settled


def label_read(request) -> tuple | None:
    """A label call's body and ``?next=`` as DRF's view reads them, before the caller is known; None where it would refuse them."""
    if request.META.get("CONTENT_TYPE", "").lower() not in JSON_TYPES:
        return None
    wants_next, data = _next_flag(_next_in_query(request)), _json_body(request)
    return None if wants_next is None or data is None else (data, wants_next)


def label_settle(request, read: tuple) -> tuple | None:
    """(submission, wants_next) of a plain label in ``request.campaign``; None where the body is more than a plain label."""
    data, wants_next = read
    submission = plain_label(data, campaign=request.campaign)
    return None if submission is None else (submission, wants_next)


def _token_key(request) -> str | None:
    """The key of ``Authorization: Token <key>`` as DRF's TokenAuthentication reads it (``get_authorization_header``: the
    header's latin-1 bytes, split on ASCII white space); None for anything else, which DRF then reads or refuses itself.
    The header is read from ``request.META``, where ``request.headers`` (which DRF reads, and which copies every header
    once a request) finds it."""
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    try:
        parts = (header.encode(HTTP_HEADER_ENCODING) if isinstance(header, str) else header).split()
    except UnicodeError:  # a header no HTTP server hands on (not latin-1): DRF's to answer
        return None
    if len(parts) != 2 or parts[0].lower() != _AUTHENTICATION.keyword.lower().encode():
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


_PLAIN_NEXT = re.compile(r"next=[A-Za-z0-9]*")  # a query of ``next`` alone, nothing in it to decode


def _next_in_query(request) -> str | None:
    """``request.GET.get("next")``: read from the query string itself where it is ``next=`` and letters or digits alone, as the
    rater's page and clients send it (Django's parsing of the query into a ``QueryDict`` cost about half as much as reading
    the JSON body), else from ``request.GET``."""
    query = request.META.get("QUERY_STRING", "")
    if not query:
        return None
    if _PLAIN_NEXT.fullmatch(query):
        return query[5:]
    return request.GET.get("next")


def _next_flag(raw: str | None) -> bool | None:
    """``?next=`` as the DRF view reads it (``serializers.next_wanted``); None where it would refuse it."""
    try:
        return next_wanted(raw)
    except ValidationError:
        return None


def _json_body(request):
    """The body as DRF's view reads it (``StrictJSONParser``, as UTF-8); None where the parser or Django's size limit would refuse it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # None: no limit
    if length <= 0 or (limit is not None and length > limit):
        return None
    try:
        return _PARSER.parse(io.BytesIO(request.body), parser_context={"encoding": "utf-8"})
    except ParseError:
        return None


def _json_response(body: dict | None, status: int) -> HttpResponse:
    """The answer DRF's Response gives: JSON, or no content and no Content-Type for None; and Vary: Accept."""
    if body is None:
        response = HttpResponse(status=status)
        del response["Content-Type"]
    else:
        response = HttpResponse(_RENDERER.render(body), status=status, content_type="application/json")
    patch_vary_headers(response, ("Accept",))
    return response
