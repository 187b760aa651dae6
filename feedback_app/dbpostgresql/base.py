"""Django's PostgreSQL backend, whose connection pool hands out the connection given back last and tests a connection only
when it has sat in the pool a while, and whose timestamps are read by psycopg's compiled loader.

psycopg's pool hands out the connection that has been idle longest: a web process's few threads, drawing one a request,
went round every connection the pool had grown to (five or six under load), each a server process of its own, with its
caches gone cold since its last turn. Handed out the connection given back last, the same few (as many as the process
has requests at once) serve nearly every request while the others wait, and a label costs both the web process and the
database less CPU (``bench/README.md``, session 51). The pool's other rules stay psycopg's:
it still grows when every connection is out, and, once connections have sat unused for ``max_idle``, closes one of them.

With ``CONN_HEALTH_CHECKS`` Django has its pool test every connection it hands out, with an empty
query: one round trip more for every request, the database woken for it. A connection given back
less than ``CHECK_AFTER`` seconds ago was working then, and is handed out untested (HikariCP's
``aliveBypassWindowMs`` does the same, with half a second). One that sat in the pool longer is
tested as before, so a connection the server ended meanwhile (a restart, an administrator) is
still replaced instead of failing the request that drew it; one that breaks in the moment between
is discarded by the pool when its request gives it back, as any broken connection is.

Django reads every ``timestamptz`` value with its own loader (``BaseTzLoader``), a subclass of psycopg's
pure-Python one, to give the value Django's time zone: about 4 microseconds a value, which came to a
few percent of a label's CPU in the web process (a label's rows hold about nine). ``TzLoader`` gives the
same value, through psycopg's compiled loader where psycopg has one (psycopg[binary]), in about a fifth.
"""

from __future__ import annotations

from collections import deque
from time import monotonic

import psycopg
from django.db.backends.postgresql import base
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg_pool import ConnectionPool

CHECK_AFTER = 1.0  # seconds in the pool after which a connection is tested before it is handed out
_RETURNED_AT = "_feedback_returned_at"  # set on a connection as Django gives it back to the pool


def check_unless_just_returned(conn) -> None:
    """The pool's check: none for a connection given back less than CHECK_AFTER seconds ago, else psycopg's own."""
    if monotonic() - getattr(conn, _RETURNED_AT, float("-inf")) < CHECK_AFTER:
        return
    ConnectionPool.check_connection(conn)


class MostRecentFirst(deque):
    """A pool's idle connections, handed out the one given back last first: psycopg's pool gives them back at the right
    end and hands out from the left (``popleft``), so here the left is taken from the right. (Its shrink, which closes one
    idle connection once some sat unused for ``max_idle``, takes from the left too, so closes the one given back last
    rather than the longest idle: the pool ends as small, and the next request draws the one given back before.)"""

    def popleft(self):
        return self.pop()


_TIMESTAMPTZ = psycopg.postgres.types["timestamptz"].oid
_PARSER = psycopg.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)  # the compiled loader with psycopg[binary], else psycopg's Python one


class TzLoader(Loader):
    """A ``timestamptz`` read as Django's ``BaseTzLoader`` reads it (psycopg's value, its zone replaced by ``timezone``: Django's
    time zone, or None for naive values), by psycopg's fastest loader. Django compares ``timezone`` with its own to decide
    whether a cursor needs another loader, as it does with its own class."""

    timezone = None

    def __init__(self, oid: int, context=None) -> None:
        super().__init__(oid, context)
        self._parse = _PARSER(oid, context).load

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


def tzloader_register(context, timezone) -> None:
    """Register a ``TzLoader`` for ``timezone`` on ``context`` (a connection's adapters template or a cursor)."""
    context.adapters.register_loader(_TIMESTAMPTZ, type("TzLoaderIn", (TzLoader,), {"timezone": timezone}))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        context = params.get("context")  # Django's template of adapters, one per (USE_TZ, zone), kept: registered on once
        loader = None if context is None else context.adapters.get_loader(_TIMESTAMPTZ, Format.TEXT)
        if loader is not None and not issubclass(loader, TzLoader):
            tzloader_register(context, loader.timezone)
        return params

    @property
    def pool(self):
        pool = super().pool
        if pool is None:
            return None
        # Django made the pool with psycopg's check, for every hand-out; this one skips a connection just given back.
        if getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = check_unless_just_returned
        if type(getattr(pool, "_pool", None)) is deque:  # psycopg's idle connections, longest idle first
            with pool._lock:
                if type(pool._pool) is deque:  # not made by another thread meanwhile
                    pool._pool = MostRecentFirst(pool._pool)
        return pool

    def _close(self):
        if self.connection is not None and self.pool is not None:
            setattr(self.connection, _RETURNED_AT, monotonic())
        return super()._close()
