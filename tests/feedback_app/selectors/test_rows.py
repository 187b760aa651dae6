"""Rows read by written-out SQL come back as the ORM would give them: every field, converted, and None for a missed LEFT JOIN."""

import threading

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import CaptureQueriesContext

from feedback_app.models import Assignment, PreferenceLabel, Role
from feedback_app.selectors import rows
from feedback_app.selectors.accounts import api_token_valid, user_role
from feedback_app.selectors.campaigns import campaign_default
from feedback_app.services.accounts import user_create
from feedback_app.services.labeling import LabelSubmission, label_record
from feedback_app.services.leasing import assignment_lease_next

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_an_instance_read_by_hand_equals_the_orms_field_for_field(rater, make_comparisons):
    """Dates, booleans and JSON (criteria, flags) convert as the ORM converts them."""
    make_comparisons(1)
    campaign = campaign_default()
    lease = assignment_lease_next(campaign=campaign, rater=rater)
    criteria = {name: "left" for name in LabelSubmission.criterion_names(campaign)[:1]}
    label, _ = label_record(rater=rater, campaign=campaign, comparison_id=lease.comparison_id,
                            submission=LabelSubmission(choice="left", criteria=criteria, flags=tuple(LabelSubmission.flag_names(campaign)[:1])))
    sql = (f"SELECT {rows.columns(Assignment, 'a')}, {rows.columns(PreferenceLabel, 'l')}, 7 FROM {Assignment._meta.db_table} a "
           f"LEFT JOIN {PreferenceLabel._meta.db_table} l ON l.assignment_id = a.id WHERE a.id = %s")
    assignment, read_label, extra = rows.one(sql, [lease.pk], Assignment, PreferenceLabel)
    assert _fields(assignment) == _fields(Assignment.objects.get(pk=lease.pk))
    assert _fields(read_label) == _fields(PreferenceLabel.objects.get(pk=label.pk))
    assert read_label.criteria == label.criteria and read_label.flags == label.flags and isinstance(assignment.a_on_left, bool)
    assert extra == 7
    assert not read_label._state.adding and read_label._state.db == "default"  # saved as an update, like a queryset's instance


def test_an_instance_filled_in_is_the_one_from_db_makes_and_a_listened_model_is_made_by_init(rater, make_comparisons):
    from django.db.models.signals import post_init

    make_comparisons(1)
    lease = assignment_lease_next(campaign=campaign_default(), rater=rater)
    sql = f"SELECT {rows.columns(Assignment, 'a')} FROM {Assignment._meta.db_table} a WHERE a.id = %s"
    row = rows.tuples(sql, [lease.pk])[0]
    made = Assignment.objects.get(pk=lease.pk)  # by from_db, after the database's converters
    (filled,) = rows.cut(row, Assignment)
    assert {k: v for k, v in filled.__dict__.items() if k != "_state"} == {k: v for k, v in made.__dict__.items() if k != "_state"}
    assert (filled._state.adding, filled._state.db) == (made._state.adding, made._state.db) == (False, "default") and filled == made
    assert filled.comparison.pk == lease.comparison_id and filled.rater == rater  # the relations load as on any instance
    filled.status = Assignment.Status.SKIPPED
    filled.save(update_fields=["status"])  # an update of its row, not an insert
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SKIPPED

    seen = []
    post_init.connect(lambda sender, instance, **kw: seen.append(instance.pk), sender=Assignment, weak=False, dispatch_uid="rows-test")
    try:
        assert rows.cut(row, Assignment)[0].pk == lease.pk and seen == [lease.pk]  # __init__ ran, and sent its signal
    finally:
        post_init.disconnect(sender=Assignment, dispatch_uid="rows-test")


def test_a_left_join_that_finds_nothing_gives_none_and_no_row_gives_none(rater, make_comparisons):
    make_comparisons(1)
    lease = assignment_lease_next(campaign=campaign_default(), rater=rater)
    sql = (f"SELECT {rows.columns(Assignment, 'a')}, {rows.columns(PreferenceLabel, 'l')} FROM {Assignment._meta.db_table} a "
           f"LEFT JOIN {PreferenceLabel._meta.db_table} l ON l.assignment_id = a.id WHERE a.id = %s")
    assignment, label = rows.one(sql, [lease.pk], Assignment, PreferenceLabel)
    assert assignment.pk == lease.pk and label is None
    assert rows.one(sql, [lease.pk + 1000], Assignment, PreferenceLabel) is None


def test_a_token_comes_with_its_user_and_role_in_one_query():
    user, _, key = user_create(username="rows-rater", role=Role.RATER, password="a-long-enough-password-1")
    with CaptureQueriesContext(connection) as queries:
        token = api_token_valid(key=key)
        assert token.user == user and user_role(user=token.user) == Role.RATER
    assert len(queries) == 1
    token.user.profile.delete()
    with CaptureQueriesContext(connection) as queries:
        assert user_role(user=api_token_valid(key=key).user) is None  # no profile: no role, known from the same query
    assert len(queries) == 1
    assert api_token_valid(key=key + "x") is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_on_postgresql_a_statement_run_again_is_prepared_once_and_still_seen_by_query_counts():
    sql = "SELECT COUNT(*) FROM feedback_app_campaign WHERE id > %s"
    with CaptureQueriesContext(connection) as queries:
        counts = [rows.scalar(sql, [n]) for n in range(rows.PREPARE_AFTER + 2)]
    assert len(queries) == rows.PREPARE_AFTER + 2 and counts[0] >= counts[-1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%feedback_app_campaign WHERE id > $1%"])
        assert cursor.fetchone()[0] == 1


def test_a_constant_is_written_as_a_literal_and_anything_else_is_refused():
    assert rows.constant("open") == "'open'" and rows.constant("reward_fast") == "'reward_fast'"
    assert (rows.constant(True), rows.constant(False)) == ("TRUE", "FALSE")
    with connection.cursor() as cursor:  # both databases read the boolean literals as the booleans they store
        cursor.execute(f"SELECT COUNT(*) FROM feedback_app_comparison WHERE is_gold = {rows.constant(True)}")
        assert cursor.fetchone()[0] == 0
    for bad in ("open'; DROP TABLE x; --", "a b", "", "é"):
        with pytest.raises(ValueError, match="not a constant"):
            rows.constant(bad)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_on_postgresql_a_prepared_statement_keeps_one_plan():
    """The studio's connections plan a prepared statement once (its fixed values written in), not at every run."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_generic_plan"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the kept cursor is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_each_connection_keeps_its_cursor_for_its_next_statement_whichever_thread_draws_it():
    with rows.cursor() as first:
        first.execute("SELECT 1")
    with rows.cursor() as again:
        assert again is first
        again.execute("SELECT 2")
        with rows.cursor() as inner:  # the kept one is in use: another, whose rows do not replace the first's
            assert inner is not first and inner.cursor is not first.cursor
            inner.execute("SELECT 3")
            assert inner.fetchone() == (3,)
        assert again.fetchone() == (2,)
    assert inner.cursor.closed and not first.cursor.closed
    drawn = first.cursor.connection
    connection.close()  # back to the pool: the next statement runs on the connection the pool hands out next
    with rows.cursor() as after:
        assert after.cursor.connection is connection.connection
        assert (after.cursor is first.cursor) == (connection.connection is drawn)  # the connection's own cursor, if it is the same
        after.execute("SELECT 4")
        assert after.fetchone() == (4,)
    for _ in range(30):  # the pool hands out its idle connections in turn: the first one comes back
        if connection.connection is drawn:
            break
        connection.close()
        connection.ensure_connection()
    assert connection.connection is drawn
    with rows.cursor() as back:
        assert back.cursor is first.cursor  # its cursor, with the loaders and dumpers it found before
        back.execute("SELECT 5")
        assert back.fetchone() == (5,)

    seen = {}

    def other_thread() -> None:  # another thread that draws the same connection from the pool finds the same cursor
        try:
            for _ in range(30):
                connections[DEFAULT_DB_ALIAS].ensure_connection()
                if connections[DEFAULT_DB_ALIAS].connection is drawn:
                    break
                connections[DEFAULT_DB_ALIAS].close()
            with rows.cursor() as there:
                seen["same"] = there.cursor is first.cursor
                there.execute("SELECT 6")
                seen["row"] = there.fetchone()
        finally:
            connections[DEFAULT_DB_ALIAS].close()

    connection.close()
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == {"same": True, "row": (6,)}
    with CaptureQueriesContext(connection) as queries:  # a logging cursor for each statement, so each is seen
        assert [rows.scalar("SELECT %s::int", [n]) for n in (5, 6)] == [5, 6]
        with rows.cursor() as logged:
            assert logged is not after
    assert [query["sql"] for query in queries] == ["SELECT $1::int"] * 2
