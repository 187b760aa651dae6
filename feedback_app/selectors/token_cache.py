"""API tokens checked from memory, and forgotten the moment any credential changes.

Every API call proves its token (``Authorization: Token``); read from the database, that is one statement per call, the
most frequent statement of a labeling studio after the label itself. A web process keeps the rows it has read here
(``api_token_row``: the token, its user, their role and memberships), so a rater's next call is checked without the
database, and forgets every one of them when a credential changes anywhere:

- A change that matters to a token (a token revoked or deleted; a user saved, deactivated or deleted; a role or
  a campaign membership changed) announces itself once committed (``events.api_credentials_changed``): the process that
  made it forgets at once, before its next request, and every other process hears it on a Redis channel, which a thread
  of each process listens to (``CHANNEL``), and forgets within the message's way there (about a millisecond).
- A process keeps nothing while it does not listen: before its thread has subscribed, while Redis does not answer, and
  after a broken connection (it forgets everything then, since what was said meanwhile is lost): each call reads the
  database, as without the cache.
- A row read while a change was being announced is not kept (the generation it was read under is gone), and nothing is
  kept longer than ``API_TOKEN_CACHE_SECONDS`` (the bound on a change whose message was lost with Redis itself).
  ``API_TOKEN_CACHE_SECONDS=0`` turns the cache off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from feedback_app.models import ApiToken
from feedback_app.models.accounts import api_token_digest
from feedback_app.selectors.accounts import api_token_from_row, api_token_row, api_token_valid

logger = logging.getLogger(__name__)
CHANNEL = "feedback:api-credentials-changed"
MAX_ENTRIES = 20_000  # tokens kept per process (the oldest used goes first): a few MB at most
_RETRY_SECONDS = (0.5, 10.0)  # the listener's first and longest wait before it connects again


@dataclass
class _Entry:
    row: tuple
    kept_at: float  # time.monotonic()
    last_used_at: datetime | None


class TokenCache:
    """One process's kept token rows and the thread that listens for changes (``start``; ``stop`` ends it)."""

    def __init__(self, *, redis_url: str, max_age: float, max_entries: int = MAX_ENTRIES) -> None:
        self.redis_url, self.max_age, self.max_entries = redis_url, max_age, max_entries
        self.generation = 0
        self.listening = False
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def token(self, *, key: str) -> ApiToken | None:
        """Return the unrevoked token of ``key`` (as ``api_token_valid`` does), from memory when kept and still good."""
        digest = api_token_digest(key)
        generation = self.generation  # read before the row: a change announced meanwhile moves it on
        kept = None
        if self.listening:
            with self._lock:
                entry = self._entries.get(digest)
                if entry is not None and time.monotonic() - entry.kept_at < self.max_age:  # forget() empties it on a change
                    self._entries.move_to_end(digest)
                    kept = entry.row, entry.last_used_at
        if kept is not None:  # the instances are made outside the lock: other requests' threads wait for nothing
            token = api_token_from_row(kept[0])
            token.last_used_at = kept[1]
            return token
        row = api_token_row(digest=digest)
        if row is None:
            return None
        token = api_token_from_row(row)
        if self.listening:
            with self._lock:
                if self.generation == generation:  # no change was announced while the row was read
                    self._entries[digest] = _Entry(row, time.monotonic(), token.last_used_at)
                    self._entries.move_to_end(digest)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
        return token

    def used(self, *, token: ApiToken) -> None:
        """Note the time ``api_token_touch`` recorded for ``token``, so its kept row does not ask to be touched again."""
        with self._lock:
            entry = self._entries.get(token.digest)
            if entry is not None:
                entry.last_used_at = token.last_used_at

    def forget(self) -> None:
        """Forget every kept row: a credential changed (or may have, unheard)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def start(self) -> TokenCache:
        self._thread = threading.Thread(target=self._listen, name="api-token-cache", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.listening = False
        self.forget()

    def _listen(self) -> None:
        import redis

        wait, warned = _RETRY_SECONDS[0], False
        while not self._stopping.is_set():
            pubsub = None
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=30, health_check_interval=10)
                pubsub = client.pubsub()
                pubsub.subscribe(CHANNEL)
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # from here on every change is heard
                        self.forget()
                        self.listening = True
                        wait = _RETRY_SECONDS[0]
                        if warned:
                            logger.info("API tokens are kept in memory again (Redis answers)")
                            warned = False
                    elif message["type"] == "message":
                        self.forget()
            except Exception as exc:  # Redis down or restarting, a broken connection: check in the database until it is back
                self.listening = False
                self.forget()
                if not warned:
                    logger.warning("API tokens are checked in the database on every request until Redis answers again: %s", exc)
                    warned = True
                self._stopping.wait(wait)
                wait = min(wait * 2, _RETRY_SECONDS[1])
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 (closing a connection that is already gone)
                        pass
        self.listening = False


_process: tuple[tuple, TokenCache] | None = None
_process_lock = threading.Lock()


def process_cache() -> TokenCache | None:
    """Return this process's cache, started on first use (again after a fork, or when its settings changed); None when
    ``API_TOKEN_CACHE_SECONDS`` is 0."""
    global _process
    max_age = settings.API_TOKEN_CACHE_SECONDS
    if max_age <= 0:
        return None
    key = (os.getpid(), settings.REDIS_URL, max_age)
    current = _process
    if current is not None and current[0] == key:
        return current[1]
    with _process_lock:
        if _process is None or _process[0] != key:
            if _process is not None and _process[0][0] == key[0]:
                _process[1].stop(timeout=0)  # settings changed in this process (tests); a forked child's copy has no thread
            _process = (key, TokenCache(redis_url=settings.REDIS_URL, max_age=max_age).start())
        return _process[1]


def api_token_checked(*, key: str) -> ApiToken | None:
    """Return the unrevoked token of ``key``: this process's cache when it has one, else the database."""
    cache = process_cache()
    return api_token_valid(key=key) if cache is None else cache.token(key=key)


def api_token_used(*, token: ApiToken) -> None:
    """Tell the cache the time the token's use was recorded (``services.accounts.api_token_touch``)."""
    if (cache := _started_here()) is not None:
        cache.used(token=token)


def forget_here() -> None:
    """Forget this process's kept tokens now (the process that changed a credential, before its next request)."""
    if (cache := _started_here()) is not None:
        cache.forget()


def stop_here() -> None:
    """Stop this process's listener, if it has one, and forget (before the Redis it listens to is stopped on purpose)."""
    if (cache := _started_here()) is not None:
        cache.stop()


def _started_here() -> TokenCache | None:
    """This process's cache if one was started in it (never one a forked child inherited), without starting one."""
    current = _process
    return current[1] if current is not None and current[0][0] == os.getpid() else None
