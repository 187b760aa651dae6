"""Web requests run on threads kept from request to request, each with its database connection."""

import json
import threading

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.db import connection, connections
from django.http import JsonResponse
from django.urls import path

from feedback_app.request_threads import KeptThreadsHandler

pytestmark = pytest.mark.django_db(transaction=True)

_gate: dict[str, threading.Barrier] = {}


def where_am_i(request):
    connection.ensure_connection()
    if "gate" in request.GET:  # wait until every request of the test is inside a view at once
        _gate["barrier"].wait(timeout=10)
    return JsonResponse({"thread": threading.get_ident(), "connection": id(connection.connection)})


urlpatterns = [path("where/", where_am_i)]


@pytest.fixture
def handler(settings):
    settings.ROOT_URLCONF = __name__
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    connection.settings_dict["CONN_MAX_AGE"] = 60
    handler = KeptThreadsHandler(threads=2)
    yield handler
    for executor in handler._idle:  # close the kept threads' connections, as a web process does when it ends
        executor.submit(lambda: connections["default"].close()).result()
        executor.shutdown()


async def _get(app, query: str = "") -> dict:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/where/",
             "raw_path": b"/where/", "query_string": query.encode(), "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=20)
    body = await communicator.receive_output(timeout=20)
    assert start["status"] == 200, body
    return json.loads(body["body"])


def test_one_request_after_another_finds_the_same_thread_and_its_open_connection(handler):
    first = async_to_sync(_get)(handler)
    second = async_to_sync(_get)(handler)
    assert second == first
    assert handler.fresh == 0


def test_requests_beyond_the_kept_threads_run_at_once_on_threads_of_their_own(handler):
    """Three requests that must all be inside a view together pass with two kept threads: none waits for a thread."""
    _gate["barrier"] = threading.Barrier(3)

    async def three():
        import asyncio

        return await asyncio.gather(*(_get(handler, "gate=1") for _ in range(3)))

    answers = async_to_sync(three)()
    assert len({answer["thread"] for answer in answers}) == 3
    assert handler.fresh == 1
    kept = {async_to_sync(_get)(handler)["thread"] for _ in range(4)}  # afterwards only the two kept threads serve
    assert kept <= {answer["thread"] for answer in answers} and len(kept) <= 2
