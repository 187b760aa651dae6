"""Django's PostgreSQL backend, whose connection pool tests a connection only when it has sat in the pool a while.

With ``CONN_HEALTH_CHECKS`` Django has its pool test every connection it hands out, with an empty
query: one round trip more for every request, the database woken for it. A connection given back
less than ``CHECK_AFTER`` seconds ago was working then, and is handed out untested (HikariCP's
``aliveBypassWindowMs`` does the same, with half a second). One that sat in the pool longer is
tested as before, so a connection the server ended meanwhile (a restart, an administrator) is
still replaced instead of failing the request that drew it; one that breaks in the moment between
is discarded by the pool when its request gives it back, as any broken connection is.
"""

from __future__ import annotations

from time import monotonic

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

CHECK_AFTER = 1.0  # seconds in the pool after which a connection is tested before it is handed out
_RETURNED_AT = "_feedback_returned_at"  # set on a connection as Django gives it back to the pool


def check_unless_just_returned(conn) -> None:
    """The pool's check: none for a connection given back less than CHECK_AFTER seconds ago, else psycopg's own."""
    if monotonic() - getattr(conn, _RETURNED_AT, float("-inf")) < CHECK_AFTER:
        return
    ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        pool = super().pool
        # Django made the pool with psycopg's check, for every hand-out; this one skips a connection just given back.
        if pool is not None and getattr(pool, "_check", None) is ConnectionPool.check_connection:
            pool._check = check_unless_just_returned
        return pool

    def _close(self):
        if self.connection is not None and self.pool is not None:
            setattr(self.connection, _RETURNED_AT, monotonic())
        return super()._close()
