"""The write throttles (``throttle_scope`` on a view, rates in ``DEFAULT_THROTTLE_RATES``), counted in the web process.

DRF's ``ScopedRateThrottle`` keeps each caller's request times in Django's default cache, which
in a web process is a ``LocMemCache``: every call unpickled the caller's list of times and
pickled it back (a rater labelling at 6 a second holds 360 of them in the label scope's minute),
under the cache's lock. Here the list itself is kept, in a dict of this process, as the counts
were already per process; what DRF decides from it is unchanged.
"""

from __future__ import annotations

import threading
import time

from rest_framework.throttling import ScopedRateThrottle


class ProcessTimes:
    """The ``get``/``set`` of a cache that DRF's throttles use, holding the values themselves (no copy) until they expire.

    Expired entries are dropped when the dict has grown past ``prune_at`` since the last sweep, so
    callers that stopped calling are not kept for ever.
    """

    def __init__(self, prune_at: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, list]] = {}
        self._lock = threading.Lock()
        self._prune_at = prune_at
        self._swept_size = 0

    def get(self, key: str, default=None):
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return default
        return entry[1]

    def set(self, key: str, value: list, timeout: float) -> None:
        now = time.monotonic()
        self._entries[key] = (now + timeout, value)
        if len(self._entries) - self._swept_size >= self._prune_at:
            with self._lock:
                for stale in [k for k, (expires, _) in list(self._entries.items()) if expires <= now]:
                    self._entries.pop(stale, None)
                self._swept_size = len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._swept_size = 0

    def __len__(self) -> int:
        return len(self._entries)


class ProcessScopedRateThrottle(ScopedRateThrottle):
    """``ScopedRateThrottle`` with its request times kept in this process (``ProcessTimes``)."""

    cache = ProcessTimes()
