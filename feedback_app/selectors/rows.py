"""Model instances read by written-out SQL: the labeling path's reads without the ORM's work per query.

Building a query (``SQLCompiler.as_sql``) costs the ORM about 0.4 ms of CPU for a lookup by key
with a join, ten times the statement itself; a label and its next lease made eight of them. Here
a caller writes the statement once, selecting each model's columns with ``columns(model, alias)``
(every concrete field, in the model's order), and gets instances back from ``one``: the row is
cut into one slice per model, each value passed through the converters Django's compiler would
apply (SQLite's dates, booleans and JSON), and each slice made an instance as a queryset would
(``Model.from_db``). A model whose slice is all NULL (a LEFT JOIN that found nothing) is None.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

PREPARE_AFTER = 2  # PostgreSQL: a statement run this many times on a connection is prepared there


_KEPT = "_feedback_binding_cursor"  # on Django's connection (one per thread): the wrapped cursor it ran its last statement on
_KEPT_RAW = "_feedback_server_binding_cursor"  # on the database connection itself (psycopg's, drawn from the pool): its cursor


@contextmanager
def cursor() -> Iterator:
    """Django's cursor, except on PostgreSQL: one that binds parameters on the server, so a statement run again and again on a
    connection is prepared there once and planned no more (planning was half the database's time of a label; Django
    binds on the client and never prepares). Wrapped as Django wraps its own, so errors, query logs and execute
    wrappers (the tests' query counts) see it as any other.

    On PostgreSQL each database connection keeps that cursor for its next statement, whichever thread draws the connection
    from the pool next (the pool hands out the connection given back last, so a thread's next request often draws another
    thread's; a cursor made afresh, and the loaders and dumpers it looks up again for its statements' types, cost a
    quarter more CPU on a statement of 56 columns), and
    the thread keeps its wrapping of it while it holds the same connection. A cursor is made for one statement and closed
    after when queries are being logged (a debug cursor logs each), or when the kept one is still in use (a statement run
    while another's rows are being read)."""
    db = connections[DEFAULT_DB_ALIAS]  # one look-up of the thread's connection, not one per attribute
    if db.vendor != "postgresql":
        with db.cursor() as plain:
            yield plain
        return
    kept = db.__dict__.get(_KEPT)
    if (kept is None or kept.in_use or db.queries_logged or db.connection is None
            or kept.cursor.connection is not db.connection):
        db.ensure_connection()
        if db.queries_logged or (kept is not None and kept.in_use):  # used once, then closed
            with db.wrap_database_errors:
                once = db._prepare_cursor(_binding_cursor(db.connection))
            with once:
                yield once
            return
        raw = getattr(db.connection, _KEPT_RAW, None)
        if raw is None or raw.closed:
            with db.wrap_database_errors:
                raw = _binding_cursor(db.connection)
            setattr(db.connection, _KEPT_RAW, raw)
        kept = db.__dict__[_KEPT] = db._prepare_cursor(raw)
    kept.in_use = True
    try:
        yield kept
    finally:
        kept.in_use = False


def _binding_cursor(connection):
    from django.db.backends.postgresql.base import ServerBindingCursor  # here: psycopg is there only with PostgreSQL

    connection.prepare_threshold = PREPARE_AFTER  # only server-binding cursors prepare; Django's own never do
    return ServerBindingCursor(connection)


@lru_cache(maxsize=1)
def vendor() -> str:
    """The default database's vendor ("postgresql", "sqlite"), read once: a process has one. Django's ``connection`` proxy looks
    the thread's connection up at every attribute read (about 2 microseconds), and a label asked it a dozen times."""
    return connections[DEFAULT_DB_ALIAS].vendor


@lru_cache(maxsize=1)
def row_locks() -> bool:
    """Whether the default database locks rows (``SELECT ... FOR UPDATE``): PostgreSQL's do; SQLite's writers take turns."""
    return connections[DEFAULT_DB_ALIAS].features.has_select_for_update


def timestamp(value):
    """``value``, a datetime (or None), as a statement's parameter: as ``connection.ops.adapt_datetimefield_value`` gives it, which
    on PostgreSQL is the value itself."""
    return value if vendor() == "postgresql" else connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value(value)


def constant(value) -> str:
    """Return ``value`` (a choice's value or a boolean, fixed in the code, never input) as an SQL literal, to write into a
    statement in place of a parameter: a prepared statement's generic plan then knows it. Bound as a parameter, the gold
    pick's ``is_gold`` was unknown to the plan PostgreSQL settles on after five runs, which walked every open comparison
    (6 ms at 34,000, 50 ms under load) instead of the (is_gold, status) index."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # SQLite (3.23+) reads them as 1 and 0, as it stores booleans
    text = str(value)
    if not text.replace("_", "").isalnum() or not text.isascii():
        raise ValueError(f"not a constant to write into SQL: {value!r}")
    return f"'{text}'"


@lru_cache(maxsize=None)
def _fields(model: type[Model]) -> tuple:
    return tuple(model._meta.concrete_fields)


def columns(model: type[Model], alias: str) -> str:
    """Return the select list of every concrete column of ``model`` under the table alias ``alias``, in field order."""
    return _columns(model, alias, vendor())


@lru_cache(maxsize=None)
def _columns(model: type[Model], alias: str, vendor: str) -> str:
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(field.column)}" for field in _fields(model))


@lru_cache(maxsize=None)
def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in _fields(model)]


@lru_cache(maxsize=None)
def _converters(model: type[Model], vendor: str) -> tuple:
    """(position, column, converters) of each field that has converters as Django's compiler applies them for this database
    (on PostgreSQL few have: psycopg's own types come out as Python's)."""
    converting = []
    for position, field in enumerate(_fields(model)):
        column = field.get_col(model._meta.db_table)
        converters = tuple(connection.ops.get_db_converters(column) + field.get_db_converters(connection))
        if converters:
            converting.append((position, column, converters))
    return tuple(converting)


@lru_cache(maxsize=None)
def _filled_in(model: type[Model]) -> bool:
    """Whether an instance of ``model`` made by ``Model.__init__`` from every field's value is the same as one whose
    ``__dict__`` is filled in with them: the model keeps Django's ``__init__`` and ``from_db``, and each field's attribute is
    Django's own descriptor, which writes the value into ``__dict__`` (a foreign key's also forgets a cached object, which a
    new instance has none of). Signals are checked at each call, as ``__init__`` sends them."""
    own = model.__init__ is Model.__init__ and model.from_db.__func__ is Model.from_db.__func__
    return own and all(type(getattr(model, field.attname, None)) in (DeferredAttribute, ForeignKeyDeferredAttribute) for field in _fields(model))


def _instance(model: type[Model], values: tuple) -> Model | None:
    if all(value is None for value in values):
        return None
    converting = _converters(model, vendor())
    if converting:
        db = connections[DEFAULT_DB_ALIAS]  # the converters' argument; looked up only for a model that has them
        values = list(values)
        for position, column, converters in converting:
            value = values[position]
            for converter in converters:
                value = converter(value, column, db)
            values[position] = value
    return made(model, values)


def made(model: type[Model], values, alias: str = DEFAULT_DB_ALIAS) -> Model:
    """Return the instance of ``model`` read from database ``alias`` whose fields hold ``values`` (Python's values, every concrete
    field's in the model's order, as ``values_of`` gives them), as ``Model.from_db`` makes it."""
    names = _attnames(model)
    if not _filled_in(model) or _init_heard(model):
        return model.from_db(alias, names, values)
    # What from_db makes, without __init__'s walk through the fields (__init__ took about a tenth of a label's profiled time
    # in the web process): its state (not adding, from this database), then each field's value under its attname.
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    instance.__dict__.update(zip(names, values))
    return instance


def _init_heard(model: type[Model]) -> bool:
    """Whether a receiver of ``pre_init`` or ``post_init`` listens for ``model`` (as ``__init__`` would send them): where none is
    connected at all, as in the studio, two reads of a list instead of two look-ups of the signals' receivers for the model
    (a label made ten instances)."""
    return bool(pre_init.receivers or post_init.receivers) and (pre_init.has_listeners(model) or post_init.has_listeners(model))


def values_of(instance: Model) -> tuple:
    """The values of every concrete field of the saved ``instance``, in the model's order: ``made`` makes it again from them."""
    return tuple(getattr(instance, field.attname) for field in _fields(type(instance)))


def one(sql: str, params: list, *models: type[Model]) -> tuple | None:
    """Run ``sql`` (which selects ``columns`` of each of ``models``, in order, and then any further values) and return the first
    row as (instance of each model, then the further values), or None when there is no row."""
    with cursor() as c:
        c.execute(sql, params)
        row = c.fetchone()
    return None if row is None else cut(row, *models)


def cut(row: tuple, *models: type[Model]) -> tuple:
    """Return ``row`` (``columns`` of each of ``models``, in order, then any further values) as (instance of each model, then the
    further values): fresh instances each call, so a row kept in memory can be made into instances again."""
    result, start = [], 0
    for model in models:
        width = len(_fields(model))
        result.append(_instance(model, row[start:start + width]))
        start += width
    return (*result, *row[start:])


def tuples(sql: str, params: list) -> list[tuple]:
    """Run ``sql`` and return its rows as they come (no conversion)."""
    with cursor() as c:
        c.execute(sql, params)
        return c.fetchall()


def scalar(sql: str, params: list):
    """Run ``sql`` and return the first column of its first row, or None when there is no row."""
    with cursor() as c:
        c.execute(sql, params)
        row = c.fetchone()
    return row[0] if row else None
