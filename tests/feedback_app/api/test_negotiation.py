"""The renderer chosen once per Accept header: the same answers as DRF's negotiation, kept, bounded, a 406 never kept."""

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from feedback_app.api import negotiation
from feedback_app.api.negotiation import KeptContentNegotiation

HEADERS = [None, "*/*", "application/json", "text/html", "application/json; indent=4", "text/html;q=0.5, application/json",
           "application/*", "text/html, application/xhtml+xml, */*;q=0.8"]


@pytest.fixture(autouse=True)
def nothing_kept(monkeypatch):
    monkeypatch.setattr(KeptContentNegotiation, "_kept", {})


def request_with(accept: str | None) -> Request:
    extra = {"HTTP_ACCEPT": accept} if accept is not None else {}
    return Request(APIRequestFactory().get("/api/v1/campaigns/", **extra))


def answer(negotiator, accept, renderers):
    renderer, media_type = negotiator.select_renderer(request_with(accept), renderers)
    return renderers.index(renderer), media_type


@pytest.mark.parametrize("accept", HEADERS)
def test_the_same_renderer_and_media_type_as_drf_first_and_when_kept(accept):
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]
    expected = answer(DefaultContentNegotiation(), accept, renderers)
    assert answer(KeptContentNegotiation(), accept, renderers) == expected
    assert len(KeptContentNegotiation._kept) == 1
    fresh = [JSONRenderer(), BrowsableAPIRenderer()]  # the next request's instances
    assert answer(KeptContentNegotiation(), accept, fresh) == expected


def test_other_renderers_are_negotiated_apart():
    assert answer(KeptContentNegotiation(), "text/html", [JSONRenderer(), BrowsableAPIRenderer()])[0] == 1
    json_only = [JSONRenderer()]
    assert answer(KeptContentNegotiation(), "text/html, */*;q=0.1", json_only) == answer(DefaultContentNegotiation(), "text/html, */*;q=0.1", json_only)
    assert len(KeptContentNegotiation._kept) == 2


def test_an_unacceptable_header_is_a_406_every_time_and_never_kept():
    for _ in range(2):
        with pytest.raises(NotAcceptable):
            KeptContentNegotiation().select_renderer(request_with("image/png"), [JSONRenderer()])
    assert KeptContentNegotiation._kept == {}


def test_only_the_first_distinct_headers_are_kept(monkeypatch):
    monkeypatch.setattr(negotiation, "KEPT_MAX", 3)
    renderers = [JSONRenderer(), BrowsableAPIRenderer()]
    for n in range(10):
        accept = f"application/json; v={n}"
        assert answer(KeptContentNegotiation(), accept, renderers) == answer(DefaultContentNegotiation(), accept, renderers)
    assert len(KeptContentNegotiation._kept) == 3
