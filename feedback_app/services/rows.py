"""Model instances written by statements built once per model and field list: the labeling path's writes.

The counterpart of ``selectors.rows``: ``Model.save`` builds its INSERT or UPDATE anew on every
call (about 0.2 ms of CPU each; a label and its next lease made four). Here the statement is
built once and cached, and every value goes through the same steps the ORM's compiler takes
(``Field.pre_save``, so ``auto_now_add`` stamps, then ``get_db_prep_save``). Like ``QuerySet.update``,
no ``pre_save``/``post_save`` signal is sent; the studio connects none to these models.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NoReturn

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Model

from feedback_app.selectors.rows import cursor, scalar


@lru_cache(maxsize=None)
def _insert_sql(model: type[Model], vendor: str) -> tuple[str, tuple, bool]:
    fields = tuple(field for field in model._meta.concrete_fields if field is not model._meta.pk)
    quote = connection.ops.quote_name
    returning = connection.features.can_return_columns_from_insert
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})" + (f" RETURNING {quote(model._meta.pk.column)}" if returning else ""))
    return sql, fields, returning


def insert(instance: Model) -> Model:
    """Insert ``instance``, a new row of a model whose key the database assigns, as ``instance.save()`` would; return it, saved."""
    model, db = type(instance), connections[DEFAULT_DB_ALIAS]
    sql, fields, returning = _insert_sql(model, db.vendor)
    with cursor() as c:
        c.execute(sql, _insert_params(instance, fields, db))
        key = c.fetchone()[0] if returning else db.ops.last_insert_id(c, model._meta.db_table, model._meta.pk.column)
    return inserted(instance, key)


@lru_cache(maxsize=None)
def _insert_when_sql(model: type[Model], vendor: str) -> str:
    sql, fields, _ = _insert_sql(model, vendor)
    head = sql[:sql.index(" VALUES (")]
    return f"w0 AS ({head} SELECT {', '.join(['%s'] * len(fields))} WHERE {{condition}} RETURNING {connection.ops.quote_name(model._meta.pk.column)})"


def insert_when(instance: Model, condition: str, condition_params: list) -> tuple[str, list, str] | None:
    """On PostgreSQL, the WITH clause that inserts ``instance`` (a new row whose key the database assigns) where ``condition``
    holds, its parameters and the column of the new key (NULL where it did not hold): for a statement that also reads, so
    the insert and the read see the tables as the same snapshot. Pass the key to ``inserted``. None elsewhere: there the
    caller reads, then calls ``insert``."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return None
    sql = _insert_when_sql(type(instance), db.vendor).replace("{condition}", condition)
    key = db.ops.quote_name(type(instance)._meta.pk.column)
    return f"WITH {sql}", [*_insert_params(instance, _insert_sql(type(instance), db.vendor)[1], db), *condition_params], f"(SELECT {key} FROM w0)"


def _insert_params(instance: Model, fields: tuple, db) -> list:
    # db: the thread's connection itself, looked up once; Django's ``connection`` is a proxy that looks it up again for
    # every attribute a field's preparation reads
    return [field.get_db_prep_save(field.pre_save(instance, True), db) for field in fields]


def inserted(instance: Model, key) -> Model:
    """Return ``instance``, saved as the row of key ``key`` (the row an ``insert_when`` clause inserted)."""
    instance.pk = key
    instance._state.adding, instance._state.db = False, DEFAULT_DB_ALIAS
    return instance


@lru_cache(maxsize=None)
def _update_sql(model: type[Model], names: tuple[str, ...], also: str, vendor: str) -> tuple[str, tuple]:
    fields = tuple(model._meta.get_field(name) for name in names)
    quote = connection.ops.quote_name
    sets = [f"{quote(field.column)} = %s" for field in fields] + ([also] if also else [])
    sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {quote(model._meta.pk.column)} = %s"
    return sql, fields


def update(instance: Model, names: list[str], *, also: str = "", also_params: list = ()) -> None:
    """Write the fields ``names`` of the saved ``instance`` to its row, as ``instance.save(update_fields=names)`` would;
    ``also`` is more of the SET clause, written out (a value the database computes), with its parameters ``also_params``."""
    if not names and not also:
        return
    db = connections[DEFAULT_DB_ALIAS]
    sql, fields = _update_sql(type(instance), tuple(names), also, db.vendor)
    with cursor() as c:
        c.execute(sql, _update_params(instance, fields, also_params, db))
        if c.rowcount == 0:
            _missing(instance)


def _update_params(instance: Model, fields: tuple, also_params: list, db) -> list:
    return [*(field.get_db_prep_save(field.pre_save(instance, False), db) for field in fields), *also_params, instance.pk]


def _missing(instance: Model) -> NoReturn:
    raise DatabaseError(f"{type(instance).__name__} {instance.pk} is not there to update")


@lru_cache(maxsize=None)
def _insert_then_update_sql(model: type[Model], updates: tuple[tuple[type[Model], tuple[str, ...], str], ...], reads: tuple[str, ...],
                            vendor: str, withs: tuple[str, ...] = ()) -> str:
    insert_sql = _insert_sql(model, vendor)[0]
    parts = [f"w0 AS ({insert_sql})"]
    parts += [f"w{i} AS ({_update_sql(updated, names, also, vendor)[0]} RETURNING 1)" for i, (updated, names, also) in enumerate(updates, 1)]
    parts += withs
    values = [f"(SELECT COUNT(*) FROM w{i})" for i in range(1, len(updates) + 1)] + [f"({read})" for read in reads]
    return f"WITH {', '.join(parts)} SELECT (SELECT {connection.ops.quote_name(model._meta.pk.column)} FROM w0), {', '.join(values)}"


def insert_then_update(instance: Model, updates: list[tuple[Model, list[str], str, list]], *, reads: list[tuple[str, list]] = (),
                       withs: list[tuple[str, list]] = ()) -> list:
    """``insert(instance)``, then ``update(saved, names, also=also, also_params=also_params)`` for each of ``updates`` in turn;
    ``instance`` is saved. Return the first column of the first row (None for none) of each of ``reads`` (a statement and
    its parameters), which must not depend on these writes.

    On PostgreSQL all of it is one statement (data-modifying WITH clauses: one round trip instead of one per row), in which
    every part reads the tables as they were before the statement: an ``also`` that reads a row another part writes reads
    it unwritten, and so do the reads. Elsewhere the reads run after the writes. Call inside a transaction: an update that
    finds no row raises after the rest.

    ``withs`` (PostgreSQL only) are more WITH clauses for the statement (``name AS (...)`` and its parameters), after the
    writes': a write of the caller's that needs no row of these, and which ``reads`` may select from."""
    updates = [(saved, names, also, also_params) for saved, names, also, also_params in updates if names or also]
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        if withs:
            raise ValueError("more WITH clauses beside the writes are PostgreSQL's")
        insert(instance)
        for saved, names, also, also_params in updates:
            update(saved, names, also=also, also_params=also_params)
        return [scalar(sql, params) for sql, params in reads]
    sql = _insert_then_update_sql(type(instance), tuple((type(saved), tuple(names), also) for saved, names, also, _ in updates),
                                  tuple(sql for sql, _ in reads), db.vendor, tuple(sql for sql, _ in withs))
    params = _insert_params(instance, _insert_sql(type(instance), db.vendor)[1], db)
    for saved, names, also, also_params in updates:
        params += _update_params(saved, _update_sql(type(saved), tuple(names), also, db.vendor)[1], also_params, db)
    for _, with_params in withs:
        params += with_params
    for _, read_params in reads:
        params += read_params
    with cursor() as c:
        c.execute(sql, params)
        key, *values = c.fetchone()
    for (saved, *_), count in zip(updates, values):
        if count == 0:  # the statement's writes are one: raising here rolls the insert back with the transaction
            _missing(saved)
    inserted(instance, key)
    return values[len(updates):]
