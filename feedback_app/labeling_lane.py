"""A web process's labeling lane: its raters' labeling calls served one at a time, beside every other request.

A web process serves requests on several threads: a few under the WSGI entry point (Granian's blocking threads,
``devsupport.WSGI_THREADS``), up to ``WEB_THREADS`` under the ASGI one (``request_threads.KeptThreadsHandler``).
Labeling calls (a label, the next comparison, a skip: nearly every request of a busy studio) that ran on them at once took
turns at the interpreter's lock at each of their database round trips, and kept as many of the pool's connections busy,
each with a server process of its own. Here a process runs its labeling calls one after another, the calls waiting
meanwhile off the interpreter, on the few connections given back last, warm. Under the goal load this cost the web and
the database a tenth less CPU a label on WSGI and a quarter less on ASGI, each at a lower p99 (``bench/README.md``,
"Session 52").

Nothing else takes the lane: a page, an export, an import or the admin runs beside it on the other threads, so a long
request never holds the labeling calls back. A call waits for the lane at most ``wait`` seconds (``LABELING_LANE_WAIT_MS``);
past that (the call ahead of it waits on a row lock, or on SQLite's write lock) it is served beside the lane, as every
call was before, so the lane holds no call back longer than that. It changes when a call runs, never what it does.
This module is the WSGI entry point's lane, a lock taken before Django's handler; the ASGI entry point's is a kept
thread of its own (``request_threads``).
"""

from __future__ import annotations

import re
import threading

# The labeling calls' paths (api.urls): the default campaign's, and a campaign's under /api/v1/campaigns/<slug>/.
LABELING_PATH = re.compile(r"/api/v1/(?:campaigns/[-a-zA-Z0-9_]+/)?comparisons/(?:next|[0-9]+/(?:label|skip))/")


class LabelingLane:
    """The WSGI application ``application``, with its labeling calls served one at a time (each waits ``wait`` seconds at most)."""

    def __init__(self, application, *, wait: float) -> None:
        self.application, self.wait = application, wait
        self._lane = threading.Lock()
        self.beside = 0  # labeling calls served beside the lane after waiting ``wait`` for it

    def __call__(self, environ, start_response):
        if LABELING_PATH.fullmatch(environ.get("PATH_INFO", "")) is None:
            return self.application(environ, start_response)
        if not self._lane.acquire(timeout=self.wait):
            self.beside += 1
            return self.application(environ, start_response)
        try:
            return self.application(environ, start_response)
        finally:
            self._lane.release()


def lane_wrapped(application, *, wait_ms: int):
    """Return ``application`` with a labeling lane whose calls wait ``wait_ms`` milliseconds at most; 0: without one."""
    return LabelingLane(application, wait=wait_ms / 1000) if wait_ms > 0 else application
