"""Django's ASGI handler with each request's synchronous code on a thread kept from request to request.

Django runs a request's views and middleware in a thread of its own (``ThreadSensitiveContext``),
and by default that is a new thread for every request: the thread, its database connection and
the connection's setup (SQLite opens the file, reads its schema and sets its pragmas) are made
and thrown away per request. Here a web process keeps ``threads`` single-thread executors and
lends one to each request for its whole length, so a request still runs all its synchronous
code on one thread, alone, and the next request on that thread finds its database connection
open (Django's ``CONN_MAX_AGE`` and health checks decide when one is closed, as under WSGI).
While every kept thread is busy, a request gets a fresh thread, as Django would give it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler


class KeptThreadsHandler(ASGIHandler):
    def __init__(self, *, threads: int) -> None:
        super().__init__()
        self._idle = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{i}") for i in range(threads)]
        self.fresh = 0  # requests served on a fresh thread because every kept one was busy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else None
        if executor is None:
            self.fresh += 1
        try:
            # The event loop runs one request's code at a time, so the list needs no lock. Without an executor the
            # context makes a thread for this request and ends it after, as Django's own handler does.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if executor is not None:
                self._idle.append(executor)
