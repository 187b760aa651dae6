"""A rater's API calls leave nothing for the garbage collector: their objects are freed by reference counting as each ends.

Objects in a reference cycle wait for the collector, which holds the interpreter's lock while it walks them; under load a
web process ran it every second or two, for 6-44 ms each time, and the requests it held up were the slowest label calls
(bench/README.md, session 48). The calls go through Django's WSGI handler, as a web process makes them (the test client
keeps requests and answers of its own). The check collects first, then looks in what the collector found unreachable for
the objects a request makes: requests, htmx details and model instances. (A browser's page still leaves Django's own
cycles, its lazy user, message storage, forms and template contexts; a studio's load is its raters' API calls.)
"""

import gc
import io
import json
import sys
import weakref

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from feedback_app.middleware.htmx import HtmxDetails, HtmxMiddleware
from feedback_app.services.accounts import api_token_issue

# Committed, as a web process's calls are: a label's transaction and its after-commit work run as they do there.
pytestmark = pytest.mark.django_db(transaction=True)


def call(handler, method: str, path: str, *, query: str = "", body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "", "SERVER_NAME": "testserver",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "testserver", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)), **(headers or {})}
    if body:
        environ["CONTENT_TYPE"] = "application/json"
    started = {}
    content = b"".join(handler(environ, lambda status, response_headers: started.setdefault("status", status)))
    return int(started["status"].split()[0]), content


def left_for_the_collector(calls) -> list[str]:
    """Run ``calls`` with the collector off; return the requests, htmx details and model instances it then finds unreachable."""
    gc.collect()
    flags = gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds unreachable is kept in gc.garbage, to be looked at
    try:
        calls()
        gc.collect()
        return sorted({type(found).__qualname__ for found in gc.garbage
                       if isinstance(found, (HttpRequest, HtmxDetails, Model))})
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
        gc.enable()


def test_a_raters_label_calls_leave_nothing_for_the_collector(rater, make_comparisons):
    make_comparisons(8)
    _, key = api_token_issue(user=rater)
    token = {"HTTP_AUTHORIZATION": f"Token {key}"}
    handler = WSGIHandler()
    status, raw = call(handler, "GET", "/api/v1/comparisons/next/", headers=token)  # the first call's one-time work first
    assert status == 200, raw
    leased = [json.loads(raw)["id"]]

    def calls():
        status, raw = call(handler, "POST", f"/api/v1/comparisons/{leased[-1]}/label/", body=b'{"choice": "left"}', headers=token)
        assert status == 201, raw
        status, raw = call(handler, "GET", "/api/v1/comparisons/next/", headers=token)  # the two-call flow
        assert status == 200, raw
        leased.append(json.loads(raw)["id"])
        for _ in range(3):  # the combined call, its next lease made with the label where the database can
            status, raw = call(handler, "POST", f"/api/v1/comparisons/{leased[-1]}/label/", query="next=1",
                               body=b'{"choice": "right", "strength": 2}', headers=token)
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
