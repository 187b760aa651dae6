"""Load shedding: one request past the limit is answered 503 with Retry-After at once; health checks and websockets pass."""

import asyncio
import json

from feedback_app.middleware.shed import LoadShedding


class SlowApp:
    """An ASGI app whose requests wait until ``release`` is set, counting those it saw."""

    def __init__(self):
        self.release, self.seen = asyncio.Event(), 0

    async def __call__(self, scope, receive, send):
        self.seen += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app, path, kind="http"):
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    await app({"type": kind, "path": path}, receive, send)
    return sent


def test_past_the_limit_a_request_is_answered_503_with_retry_after_at_once_and_the_admitted_ones_finish():
    async def scenario():
        inner = SlowApp()
        app = LoadShedding(inner, max_in_flight=2, retry_after=3)
        admitted = [asyncio.create_task(call(app, "/api/v1/comparisons/next/")) for _ in range(2)]
        await asyncio.sleep(0)
        busy = await asyncio.wait_for(call(app, "/api/v1/comparisons/next/"), timeout=1)  # answered without waiting
        page = await asyncio.wait_for(call(app, "/label/"), timeout=1)
        health = asyncio.create_task(call(app, "/healthz"))
        websocket = asyncio.create_task(call(app, "/ws/rater/", kind="websocket"))
        await asyncio.sleep(0)
        inner.release.set()
        done = await asyncio.gather(*admitted, health, websocket)
        return inner, app, busy, page, done

    inner, app, busy, page, done = asyncio.run(scenario())
    start, body = busy
    assert start["status"] == 503 and (b"retry-after", b"3") in start["headers"]
    assert "busy" in json.loads(body["body"])["detail"]
    assert page[0]["status"] == 503 and (b"content-type", b"text/plain; charset=utf-8") in page[0]["headers"]
    assert [d[0]["status"] for d in done] == [200, 200, 200, 200] and inner.seen == 4
    assert (app.in_flight, app.shed) == (0, 2)


def test_zero_turns_shedding_off():
    async def scenario():
        inner = SlowApp()
        inner.release.set()
        app = LoadShedding(inner, max_in_flight=0)
        return await call(app, "/label/")

    assert asyncio.run(scenario())[0]["status"] == 200
