"""django-htmx's middleware, whose ``request.htmx`` refers to its request without keeping it alive.

django-htmx's ``HtmxDetails`` keeps the request it describes, and the request keeps it as ``request.htmx``: a reference
cycle in every request, which reference counting never frees. It was the one cycle of a rater's API call, so each call's
objects (the request, its body, its user, what its view loaded and hung on it) waited for the garbage collector, which a
web process ran every second or two under load, for 6–44 ms each time, holding the interpreter's lock while the
process's other requests waited: the slowest label calls of ``label_load`` (bench/README.md, session 48). Here the
details read their request through a weak reference, so a request is freed as its last use ends. (A browser's page
keeps cycles of Django's own: its lazy user, its message storage, its forms.)
"""

from __future__ import annotations

import weakref

from django_htmx import middleware


class HtmxDetails(middleware.HtmxDetails):
    """django-htmx's details of a request, which refer to it weakly (it outlives them: they hang on it)."""

    def __init__(self, request) -> None:
        self._request = weakref.ref(request)

    @property
    def request(self):
        return self._request()


class HtmxMiddleware(middleware.HtmxMiddleware):
    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        request.htmx = HtmxDetails(request)
        return self.get_response(request)

    async def __acall__(self, request):
        request.htmx = HtmxDetails(request)
        return await self.get_response(request)
