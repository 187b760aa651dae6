"""A rater's API calls leave nothing for the garbage collector: their objects are freed by reference counting as each ends.

Objects in a reference cycle wait for the collector, which holds the interpreter's lock while it walks them; under load a
web process ran it every second or two, for 6-44 ms each time, and the requests it held up were the slowest label calls
(bench/README.md, session 48). The calls go through Django's WSGI handler, as a web process makes them (the test client
keeps requests and answers of its own). The check collects first, then looks in what the collector found unreachable for
the objects a request makes: requests, htmx details and model instances. (A browser's page still leaves Django's own
cycles, its lazy user, message storage, forms and template contexts; a studio's load is its raters' API calls.)
"""

import gc
import json
import weakref

import pytest
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from bench.label_profile import Rater, unreachable_after
from feedback_app.middleware.htmx import HtmxDetails, HtmxMiddleware
from feedback_app.services.accounts import api_token_issue

# Committed, as a web process's calls are: a label's transaction and its after-commit work run as they do there.
pytestmark = pytest.mark.django_db(transaction=True)


def left_for_the_collector(calls) -> list[str]:
    """Run ``calls`` with the collector off; return the requests, htmx details and model instances it then finds unreachable."""
    return sorted({type(found).__qualname__ for found in unreachable_after(calls)
                   if isinstance(found, (HttpRequest, HtmxDetails, Model))})


def test_a_raters_label_calls_leave_nothing_for_the_collector(rater, make_comparisons):
    make_comparisons(8)
    _, key = api_token_issue(user=rater)
    api = Rater(key, combined=True, wsgi=True)  # its calls go through Django's WSGI handler
    status, raw = api.call("GET", "/api/v1/comparisons/next/")  # the first call's one-time work first
    assert status == 200, raw
    leased = [json.loads(raw)["id"]]

    def calls():
        status, raw = api.call("POST", f"/api/v1/comparisons/{leased[-1]}/label/", "", b'{"choice": "left"}')
        assert status == 201, raw
        status, raw = api.call("GET", "/api/v1/comparisons/next/")  # the two-call flow
        assert status == 200, raw
        leased.append(json.loads(raw)["id"])
        for _ in range(3):  # the combined call, its next lease made with the label where the database can
            status, raw = api.call("POST", f"/api/v1/comparisons/{leased[-1]}/label/", "next=1", b'{"choice": "right", "strength": 2}')
            assert status == 201, raw
            leased.append(json.loads(raw)["next"]["id"])

    assert left_for_the_collector(calls) == []
    assert len(set(leased)) == 5  # each call leased a comparison not leased before


def test_the_htmx_details_read_their_request_and_let_it_go_with_its_last_reference():
    seen = {}

    def view(request):
        seen["htmx"], seen["target"] = bool(request.htmx), request.htmx.target
        return HttpResponse("ok")

    request = RequestFactory().get("/label/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="workspace")
    assert HtmxMiddleware(view)(request).status_code == 200
    assert seen == {"htmx": True, "target": "workspace"}
    details, gone = request.htmx, weakref.ref(request)
    gc.disable()
    try:
        del request
        assert gone() is None  # freed by its reference count, without the collector
    finally:
        gc.enable()
    assert details.request is None
