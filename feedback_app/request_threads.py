"""Django's ASGI handler, with a request's synchronous work done in one step on a thread kept from request to request.

Two costs of Django's own ASGI handler, per request, and what this one does instead:

- **A new thread.** Django runs a request's views and middleware in a thread of its own
  (``ThreadSensitiveContext``), by default a new thread for every request: the thread, its
  database connection and the connection's setup (SQLite opens the file, reads its schema and
  sets its pragmas) are made and thrown away per request. Here a web process keeps ``threads``
  single-thread executors and lends one to each request for its whole length, so a request
  still runs all its synchronous code on one thread, alone, and the next request on that thread
  finds its database connection open (``CONN_MAX_AGE`` and health checks decide when one is
  closed, as under WSGI). While every kept thread is busy, a request waits for one in the event
  loop, up to ``wait`` seconds (threads beyond the cores only take turns at the interpreter's
  lock, and each switch costs); past that (a slow export holds them all), it gets a fresh thread,
  as Django would give it.
- **Many hops between the event loop and that thread.** Django's handler crosses over for each
  synchronous receiver of ``request_started``, for the middleware chain, and again for
  ``response.close()`` and its ``request_finished`` receivers, and it watches for a disconnect
  in a task of its own. The studio's middleware and views are all synchronous, so here the
  middleware is loaded as under WSGI and one crossing does the whole request: the signals, the
  middleware, the view and, for a response whose content is complete, closing it (which gives the
  database connection back) before the answer is sent from the event loop. A streaming response
  (an export) is sent as Django's handler sends it, each chunk pulled on the same thread, and
  closed after.

Its labeling calls (``labeling_lane.LABELING_PATH``) take a lane of their own: one kept thread, which serves them one at a
time, each waiting for it in the event loop up to ``lane_wait`` seconds, past that served as any other request. On
thirty-two threads at once they took turns at the interpreter's lock at each database round trip, each with a
connection of its own (``bench/README.md``, "Session 52"). 0: no lane.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import set_script_prefix

from feedback_app.labeling_lane import LABELING_PATH


def _nothing() -> None:
    pass


class KeptThreadsHandler(ASGIHandler):
    def __init__(self, *, threads: int, wait: float = 0.05, lane_wait: float = 0) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)  # the studio's middleware is synchronous: called as under WSGI, from the request's thread
        self._kept = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"request-{i}") for i in range(threads)]
        self._idle: asyncio.LifoQueue | None = None  # made in the server's event loop, on the first request; the last thread back goes out first
        self.wait = wait
        self.fresh = 0  # requests served on a fresh thread because every kept one stayed busy
        self.lane_wait = lane_wait
        self.lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-lane") if lane_wait > 0 else None
        self._lane_free: asyncio.Lock | None = None  # made in the server's event loop, on the first labeling call
        self.beside = 0  # labeling calls served beside the lane after waiting ``lane_wait`` for it

    async def _lane_taken(self) -> bool:
        if self._lane_free is None:
            self._lane_free = asyncio.Lock()
        try:
            await asyncio.wait_for(self._lane_free.acquire(), self.lane_wait)
        except TimeoutError:
            self.beside += 1
            return False
        return True

    async def _borrow(self) -> ThreadPoolExecutor | None:
        if self._idle is None:
            self._idle = asyncio.LifoQueue()
            for executor in self._kept:
                self._idle.put_nowait(executor)
        try:
            return self._idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            return await asyncio.wait_for(self._idle.get(), self.wait)
        except TimeoutError:
            self.fresh += 1
            return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor, give_back = await self._thread_for(scope["path"])
        try:
            # Without an executor the context makes a thread for this request and ends it after, as Django's own handler does.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            give_back()

    async def _thread_for(self, path: str) -> tuple:
        """(the executor a request to ``path`` runs on, or None for a fresh thread; what gives it back after)."""
        if self.lane is not None and LABELING_PATH.fullmatch(path) and await self._lane_taken():
            return self.lane, self._lane_free.release
        executor = await self._borrow()
        return executor, (_nothing if executor is None else partial(self._idle.put_nowait, executor))

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        """Serve the request on this thread, as Django's WSGI handler would; close a complete response here."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # as Django's ASGI handler does: the server chunks what it sends
        if not response.streaming:
            response.close()  # request_finished: the connection goes back before the answer leaves; the content stays
        return response


def collector_tuned(threshold: int) -> None:
    """Tune a web process's garbage collector for requests, once its application is loaded.

    What the process made at start (Django, the studio, their imports: most of its objects) is
    frozen, so no collection scans it again; and the young generation is collected after
    ``threshold`` net allocations instead of Python's 700, which one request passed several times.
    The older generations keep their ratios, so a full collection still comes after as many young ones.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold, *gc.get_threshold()[1:])
