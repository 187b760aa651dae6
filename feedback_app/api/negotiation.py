"""Content negotiation whose answer is kept per Accept header: the same header, the same renderer, parsed once a process.

DRF's ``DefaultContentNegotiation`` parsed the Accept header and matched it against each renderer
on every request (3% of a web process's CPU per label under ``label_load``); its answer depends
only on that header, the format asked for and the view's renderers, so it is kept for them.
Headers are the client's to choose: only the first ``KEPT_MAX`` distinct ones are kept, the rest
negotiated every time; a header no renderer accepts (406) is never kept.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

KEPT_MAX = 256


class KeptContentNegotiation(DefaultContentNegotiation):
    _kept: dict[tuple, tuple[int, str]] = {}

    def select_renderer(self, request, renderers, format_suffix=None):
        override = self.settings.URL_FORMAT_OVERRIDE
        asked = format_suffix or (request.query_params.get(override) if override else None)
        key = (request.META.get("HTTP_ACCEPT", "*/*"), asked, tuple(type(renderer) for renderer in renderers))
        kept = self._kept.get(key)
        if kept is not None:
            return renderers[kept[0]], kept[1]
        renderer, media_type = super().select_renderer(request, renderers, format_suffix)
        index = next((i for i, candidate in enumerate(renderers) if candidate is renderer), None)
        if index is not None and len(self._kept) < KEPT_MAX:
            self._kept[key] = (index, media_type)
        return renderer, media_type
