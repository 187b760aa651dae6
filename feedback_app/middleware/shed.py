"""Load shedding: past capacity a web process answers 503 with Retry-After at once, instead of letting requests time out.

An ASGI wrapper around Django's HTTP application. It counts the HTTP requests this process is
serving (its event loop runs them all, so a plain counter is exact); one more than
HTTP_MAX_IN_FLIGHT is answered 503 with ``Retry-After`` before Django sees it, so the work
already admitted finishes in time and a client knows when to come back. /healthz and /readyz
are always served (monitors must see a busy studio as alive). 0 turns shedding off.
"""

from __future__ import annotations

import json

EXEMPT = ("/healthz", "/readyz")


class LoadShedding:
    def __init__(self, application, *, max_in_flight: int, retry_after: int = 1) -> None:
        self.application, self.max_in_flight, self.retry_after = application, max_in_flight, retry_after
        self.in_flight = 0
        self.shed = 0  # requests answered 503 since start

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.max_in_flight or scope.get("path", "") in EXEMPT:
            return await self.application(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            return await self._busy(scope, send)
        self.in_flight += 1
        try:
            return await self.application(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _busy(self, scope, send) -> None:
        message = f"The studio is busy: {self.in_flight} requests in progress here. Try again in {self.retry_after} s."
        api = scope.get("path", "").startswith("/api/")
        body = json.dumps({"detail": message}).encode() if api else message.encode()
        headers = [(b"content-type", b"application/json" if api else b"text/plain; charset=utf-8"),
                   (b"retry-after", str(self.retry_after).encode()), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
