"""Web requests run on threads kept from request to request, each with its database connection."""

import json
import os
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished
from django.db import connection, connections
from django.http import JsonResponse
from django.urls import path

from feedback_app.request_threads import KeptThreadsHandler
from feedback_app.views.streaming import streaming_download

pytestmark = pytest.mark.django_db(transaction=True)

_gate: dict[str, threading.Barrier] = {}


def where_am_i(request):
    connection.ensure_connection()
    if "gate" in request.GET:  # wait until every request of the test is inside a view at once
        _gate["barrier"].wait(timeout=10)
    return JsonResponse({"thread": threading.get_ident(), "connection": id(connection.connection)})


_seen: list[tuple[str, int]] = []  # (what, thread) in the order it happened


def streamed(request):
    def chunks():
        for i in range(3):
            _seen.append((f"chunk {i}", threading.get_ident()))
            yield f"part {i};".encode()

    return streaming_download(request, chunks(), content_type="text/plain", filename="parts.txt")


def broken(request):
    raise RuntimeError("a view that fails")


def _finished(sender, **kwargs):
    _seen.append(("finished", threading.get_ident()))


urlpatterns = [path("where/", where_am_i), path("streamed/", streamed), path("broken/", broken)]


@pytest.fixture
def handler(settings, monkeypatch):
    settings.ROOT_URLCONF = __name__
    if connection.vendor == "sqlite":  # as the settings keep SQLite's connections (PostgreSQL's go back to a pool)
        monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    handler = KeptThreadsHandler(threads=2)
    yield handler
    for executor in handler._kept:  # close the kept threads' connections, as a web process does when it ends
        executor.submit(lambda: connections["default"].close()).result()
        executor.shutdown()


async def _call(app, path: str, query: str = "") -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "", "headers": [(b"host", b"127.0.0.1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=20)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=20)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=20)
    return start["status"], body


async def _get(app, query: str = "") -> dict:
    status, body = await _call(app, "/where/", query)
    assert status == 200, body
    return json.loads(body)


def test_one_request_after_another_finds_the_same_thread_and_its_open_connection(handler):
    first = async_to_sync(_get)(handler)
    second = async_to_sync(_get)(handler)
    assert second["thread"] == first["thread"]
    if connection.vendor == "sqlite":
        assert second["connection"] == first["connection"]
    assert handler.fresh == 0


def test_a_request_waits_for_a_kept_thread_while_one_comes_free_in_time(handler):
    handler.wait = 10  # long enough on any machine: the first request ends first

    async def two():
        import asyncio

        return await asyncio.gather(*(_get(handler) for _ in range(3)))  # three requests, two kept threads

    answers = async_to_sync(two)()
    assert handler.fresh == 0 and len({answer["thread"] for answer in answers}) <= 2


def test_requests_beyond_the_kept_threads_run_on_threads_of_their_own_when_none_comes_free(handler):
    """Three requests that must all be inside a view together pass with two kept threads: the third waits a moment, then gets
    a thread of its own (a slow export never holds the others up for long)."""
    _gate["barrier"] = threading.Barrier(3)

    async def three():
        import asyncio

        return await asyncio.gather(*(_get(handler, "gate=1") for _ in range(3)))

    answers = async_to_sync(three)()
    assert len({answer["thread"] for answer in answers}) == 3
    assert handler.fresh == 1
    kept = {async_to_sync(_get)(handler)["thread"] for _ in range(4)}  # afterwards only the two kept threads serve
    assert kept <= {answer["thread"] for answer in answers} and len(kept) <= 2


def test_a_streamed_answer_is_made_on_the_requests_thread_and_closed_after_its_last_chunk(handler):
    _seen.clear()
    request_finished.connect(_finished)
    try:
        status, body = async_to_sync(_call)(handler, "/streamed/")
    finally:
        request_finished.disconnect(_finished)
    assert (status, body) == (200, b"part 0;part 1;part 2;")
    assert [what for what, _ in _seen] == ["chunk 0", "chunk 1", "chunk 2", "finished"]
    assert len({thread for _, thread in _seen}) == 1


def test_a_complete_answer_is_closed_on_the_requests_thread_and_a_failing_view_is_a_500(handler):
    _seen.clear()
    request_finished.connect(_finished)
    try:
        answer = async_to_sync(_get)(handler)
        status, _ = async_to_sync(_call)(handler, "/broken/")
    finally:
        request_finished.disconnect(_finished)
    assert _seen[0] == ("finished", answer["thread"])  # the thread's connection was given back by its own thread
    assert status == 500 and len(_seen) == 2


@pytest.mark.parametrize("entry", ["asgi", "wsgi"])
def test_a_web_process_collects_young_objects_less_often_and_never_scans_what_it_made_at_start(entry):
    import subprocess
    import sys

    probe = f"import gc, feedback_app.{entry}; print(gc.get_threshold()[0], gc.get_freeze_count() > 10000)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WEB_GC_THRESHOLD": "12345"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["12345", "True"]


_inside = {"now": 0, "most": 0}
_count = threading.Lock()
_held = threading.Event()


def labeling(request, comparison_id):
    """A labeling call's stand-in: counts the calls inside it at once; ``?hold=1`` stays until ``_held`` is set."""
    with _count:
        _inside["now"] += 1
        _inside["most"] = max(_inside["most"], _inside["now"])
    if "hold" in request.GET:
        _held.wait(timeout=10)
    else:
        time.sleep(0.05)
    with _count:
        _inside["now"] -= 1
    return JsonResponse({"thread": threading.get_ident()})


urlpatterns += [path("api/v1/comparisons/<int:comparison_id>/label/", labeling), path("api/v1/comparisons/next/", where_am_i)]


@pytest.fixture
def laned(handler):
    _inside.update(now=0, most=0)
    _held.clear()
    laned = KeptThreadsHandler(threads=2, lane_wait=5)
    yield laned
    for executor in [*laned._kept, laned.lane]:
        executor.submit(lambda: connections["default"].close()).result()
        executor.shutdown()


async def _together(app, *paths):
    import asyncio

    return await asyncio.gather(*(_call(app, path) for path in paths))


def test_labeling_calls_run_one_at_a_time_on_the_lanes_thread(laned):
    answers = async_to_sync(_together)(laned, *[f"/api/v1/comparisons/{n}/label/" for n in range(3)])
    assert [status for status, _ in answers] == [200, 200, 200] and _inside["most"] == 1
    threads = {json.loads(body)["thread"] for _, body in answers} | {async_to_sync(_get)(laned)["thread"]}
    assert len(threads) == 2 and laned.beside == 0  # the lane's thread, and a kept one for the other request


def test_other_requests_run_beside_a_labeling_call_and_one_that_waited_its_wait_goes_beside_the_lane(laned):
    laned.lane_wait = 0.05

    async def calls():
        import asyncio

        held = asyncio.ensure_future(_call(laned, "/api/v1/comparisons/1/label/", "hold=1"))
        while _inside["now"] == 0:
            await asyncio.sleep(0.005)
        other = await _get(laned)  # a page is served while the labeling call holds the lane
        beside = await _call(laned, "/api/v1/comparisons/2/label/")  # waits 50 ms, then goes beside it
        _held.set()
        return other, beside, await held

    other, beside, held = async_to_sync(calls)()
    assert beside[0] == held[0] == 200 and _inside["most"] == 2 and laned.beside == 1
    assert json.loads(held[1])["thread"] != json.loads(beside[1])["thread"]
    assert async_to_sync(_call)(laned, "/api/v1/comparisons/next/")[0] == 200 and laned.beside == 1  # the lane is free again


def test_no_lane_when_its_wait_is_zero(handler):
    assert handler.lane is None
    assert async_to_sync(_call)(handler, "/api/v1/comparisons/3/label/")[0] == 200
