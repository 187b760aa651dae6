"""The pool tests a connection before handing it out only when it sat in the pool a while (feedback_app.dbpostgresql)."""

import pytest
from django.conf import settings
from django.db import connection
from psycopg_pool import ConnectionPool

from feedback_app.dbpostgresql import base


class _Connection:
    pass


def test_a_connection_given_back_just_now_is_handed_out_untested(monkeypatch):
    tested = []
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(tested.append))
    now = 1000.0
    monkeypatch.setattr(base, "monotonic", lambda: now)
    fresh, recent, idle = _Connection(), _Connection(), _Connection()
    setattr(recent, base._RETURNED_AT, now - base.CHECK_AFTER / 2)
    setattr(idle, base._RETURNED_AT, now - base.CHECK_AFTER)
    for conn in (fresh, recent, idle):
        base.check_unless_just_returned(conn)
    assert tested == [fresh, idle]  # a connection never given back (just opened) is tested, as one that sat in the pool


# Read from the settings: touching connection.pool here, at collection, would make the pool before pytest-django
# points the connection at the test database, and every test after would run on the real one.
postgresql = pytest.mark.skipif(not settings.DATABASES["default"].get("OPTIONS", {}).get("pool"), reason="the pool is PostgreSQL's")


@postgresql
@pytest.mark.django_db(transaction=True)
def test_the_studio_pool_uses_that_check_and_django_stamps_what_it_gives_back():
    connection.ensure_connection()
    raw = connection.connection
    assert connection.pool._check is base.check_unless_just_returned
    connection.close()  # back to the pool
    assert base.monotonic() - getattr(raw, base._RETURNED_AT) < base.CHECK_AFTER


@postgresql
@pytest.mark.django_db(transaction=True)
def test_the_pool_hands_out_the_connection_given_back_last():
    pool = connection.pool
    assert isinstance(pool._pool, base.MostRecentFirst)
    drawn, again = [pool.getconn() for _ in range(3)], []
    try:
        for conn in drawn:
            pool.putconn(conn)
        again = [pool.getconn() for _ in range(3)]  # psycopg's own order would give the first given back (or an older) first
        assert again == drawn[::-1]
    finally:
        for conn in again:
            pool.putconn(conn)


def test_the_idle_connections_are_handed_out_from_the_end_given_back_last():
    idle = base.MostRecentFirst(["given back first", "given back last"])
    idle.append("just given back")
    assert [idle.popleft() for _ in range(3)] == ["just given back", "given back last", "given back first"]


@postgresql
@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_while_it_sat_in_the_pool_is_replaced(monkeypatch):
    import psycopg

    params = connection.get_connection_params()
    params.pop("pool", None)
    with ConnectionPool(kwargs={**params, "autocommit": True}, min_size=1, max_size=1, check=base.check_unless_just_returned) as pool:
        conn = pool.getconn()
        pid = conn.info.backend_pid
        setattr(conn, base._RETURNED_AT, base.monotonic() - 2 * base.CHECK_AFTER)  # as if given back a while ago
        pool.putconn(conn)
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        with pool.connection(timeout=10) as replaced:
            assert replaced.execute("SELECT pg_backend_pid()").fetchone()[0] != pid


_TIMESTAMPS = ["2026-12-06 19:51:05.123456+00", "2000-01-01 00:00:00+05", "1900-03-04 05:06:07.5+00", "0001-01-01 00:00:00+00",
               "9999-12-30 23:59:59.999999+00"]


def _loaded(cursor, values: list[str], zone: str) -> list:
    cursor.execute(f"SET TIME ZONE '{zone}'")
    cursor.execute("SELECT v::timestamptz FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i", [values])
    return [row[0] for row in cursor.fetchall()]


@postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_timestamps_read_by_the_studio_loader_are_those_django_reads(zone):
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(base._TIMESTAMPTZ, base.Format.TEXT)
        assert issubclass(loader, base.TzLoader) and loader.timezone == connection.timezone
        ours = _loaded(cursor, _TIMESTAMPS, zone)
        register_tzloader(connection.timezone, cursor.cursor)  # Django's own loader, on this cursor alone
        assert not issubclass(cursor.cursor.adapters.get_loader(base._TIMESTAMPTZ, base.Format.TEXT), base.TzLoader)
        theirs = _loaded(cursor, _TIMESTAMPS, zone)
        cursor.execute("SET TIME ZONE 'UTC'")
    assert ours == theirs and [value.tzinfo for value in ours] == [value.tzinfo for value in theirs]
    assert all(value.tzinfo is connection.timezone for value in ours)


@postgresql
@pytest.mark.django_db(transaction=True)
def test_a_timestamp_past_what_python_holds_is_refused_as_django_refuses_it():
    from django.db import DataError

    with connection.cursor() as cursor:
        cursor.execute("SELECT 'infinity'::timestamptz")
        with pytest.raises(DataError, match="too large"):
            cursor.fetchone()
