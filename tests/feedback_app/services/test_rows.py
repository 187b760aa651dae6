"""Rows written by cached statements are the rows save() would write."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app.models import Assignment, Comparison, PreferenceLabel
from feedback_app.services import rows

pytestmark = pytest.mark.django_db


def _stored(instance) -> dict:
    fresh = type(instance).objects.get(pk=instance.pk)
    return {field.attname: getattr(fresh, field.attname) for field in type(instance)._meta.concrete_fields}


def test_an_insert_stores_what_create_stores(rater, make_comparisons):
    comparison = make_comparisons(2)
    now = timezone.now()
    kwargs = dict(rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now)
    by_orm = Assignment.objects.create(comparison=comparison[0], **kwargs)
    by_hand = rows.insert(Assignment(comparison=comparison[1], **kwargs))
    assert by_hand.pk and not by_hand._state.adding
    assert {**_stored(by_hand), "id": None, "comparison_id": None} == {**_stored(by_orm), "id": None, "comparison_id": None}
    label = rows.insert(PreferenceLabel(comparison=comparison[1], campaign_id=comparison[1].prompt.campaign_id, rater=rater, assignment=by_hand, winner="a", strength=3,
                                        criteria={"helpfulness": "b"}, flags=["unsafe"], a_on_left=True, time_on_task_ms=5))
    stored = PreferenceLabel.objects.get(pk=label.pk)
    assert stored.criteria == {"helpfulness": "b"} and stored.flags == ["unsafe"] and stored.created_at is not None  # JSON, auto_now_add
    assert stored.created_at == label.created_at


def test_an_update_writes_only_the_named_fields_and_a_missing_row_is_an_error(make_comparisons):
    comparison = make_comparisons(1)[0]
    Comparison.objects.filter(pk=comparison.pk).update(required_labels=5)  # changed behind the instance's back
    comparison.label_count, comparison.status, comparison.completed_at = 1, Comparison.Status.COMPLETE, timezone.now()
    rows.update(comparison, ["label_count", "completed_at"])
    stored = Comparison.objects.get(pk=comparison.pk)
    assert (stored.label_count, stored.completed_at, stored.status, stored.required_labels) == (1, comparison.completed_at, Comparison.Status.OPEN, 5)
    comparison.pk = 987654
    with pytest.raises(DatabaseError, match="Comparison 987654 is not there to update"):
        rows.update(comparison, ["label_count"])


def test_insert_then_update_writes_the_row_and_the_updates_in_one_statement_on_postgresql(rater, make_comparisons):
    comparison = make_comparisons(1)[0]
    now = timezone.now()
    lease = rows.insert(Assignment(comparison=comparison, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now))
    label = PreferenceLabel(comparison=comparison, campaign_id=comparison.prompt.campaign_id, rater=rater, assignment=lease, winner="a", a_on_left=True, time_on_task_ms=5)
    lease.status, lease.finished_at = Assignment.Status.SUBMITTED, now
    comparison.label_count = 1
    # the extra SET clause reads the lease's status: the same statement's update of it is not seen on PostgreSQL
    leased = f"leases_held = (SELECT COUNT(*) FROM {Assignment._meta.db_table} l WHERE l.comparison_id = {Comparison._meta.db_table}.id AND l.status = %s)"
    # a read beside the writes: on PostgreSQL it sees the tables as they were before the statement, elsewhere after it
    leases = (f"SELECT COUNT(*) FROM {Assignment._meta.db_table} WHERE status = %s", [Assignment.Status.LEASED])
    with CaptureQueriesContext(connection) as queries:
        read = rows.insert_then_update(label, [(lease, ["status", "finished_at"], "", []), (comparison, ["label_count"], leased, [Assignment.Status.LEASED])],
                                       reads=[leases])
    assert len(queries) == (1 if connection.vendor == "postgresql" else 4)
    assert read == [1 if connection.vendor == "postgresql" else 0]
    assert label.pk and not label._state.adding and PreferenceLabel.objects.get(pk=label.pk).assignment_id == lease.pk
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SUBMITTED
    stored = Comparison.objects.get(pk=comparison.pk)
    assert (stored.label_count, stored.leases_held) == (1, 1 if connection.vendor == "postgresql" else 0)


def test_insert_then_update_of_a_missing_row_is_an_error_and_the_transaction_keeps_nothing(rater, make_comparisons):
    comparison = make_comparisons(1)[0]
    now = timezone.now()
    lease = rows.insert(Assignment(comparison=comparison, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now))
    missing = Comparison.objects.get(pk=comparison.pk)
    missing.pk = 987654
    with pytest.raises(DatabaseError, match="Comparison 987654 is not there to update"), transaction.atomic():
        rows.insert_then_update(PreferenceLabel(comparison=comparison, campaign_id=comparison.prompt.campaign_id, rater=rater, assignment=lease, winner="a", a_on_left=True),
                                [(missing, ["label_count"], "", [])])
    assert not PreferenceLabel.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a data-modifying WITH clause is PostgreSQL's; SQLite reads, then inserts")
def test_insert_when_inserts_in_the_reading_statement_only_where_its_condition_holds(rater, make_comparisons):
    first, second = make_comparisons(2)
    now = timezone.now()
    free = f"EXISTS (SELECT 1 FROM {Comparison._meta.db_table} c WHERE c.id = %s AND c.label_count = 0)"
    Comparison.objects.filter(pk=second.pk).update(label_count=1)
    keys = []
    for comparison in (first, second):
        lease = Assignment(comparison=comparison, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now)
        clause, params, column = rows.insert_when(lease, free, [comparison.pk])
        with CaptureQueriesContext(connection) as queries, connection.cursor() as c:
            # the read sees the tables as the insert does: before it
            c.execute(f"{clause} SELECT {column}, (SELECT COUNT(*) FROM {Assignment._meta.db_table})", params)
            key, leases_seen = c.fetchone()
        assert len(queries) == 1 and leases_seen == len(keys)
        keys.append(key)
        if key is not None:
            saved = rows.inserted(lease, key)
            assert not saved._state.adding and _stored(saved)["comparison_id"] == first.pk and _stored(saved)["leased_at"] == now
    assert keys[0] is not None and keys[1] is None
    assert list(Assignment.objects.values_list("comparison_id", flat=True)) == [first.pk]


def test_insert_when_is_none_off_postgresql(rater, make_comparisons):
    lease = Assignment(comparison=make_comparisons(1)[0], rater=rater, a_on_left=True, leased_at=timezone.now(), lease_expires_at=timezone.now())
    assert (rows.insert_when(lease, "TRUE", []) is None) == (connection.vendor != "postgresql")


def test_insert_then_update_takes_more_with_clauses_for_its_reads_on_postgresql_only(rater, make_comparisons):
    """A caller's WITH clause (with its parameters, placed after the writes' and before the reads') runs in the same
    statement, and a read selects what it returned; elsewhere such a clause is refused before anything is written."""
    first, second = make_comparisons(2)
    now = timezone.now()
    lease = rows.insert(Assignment(comparison=first, rater=rater, a_on_left=True, leased_at=now, lease_expires_at=now))
    label = PreferenceLabel(comparison=first, campaign_id=first.prompt.campaign_id, rater=rater, assignment=lease, winner="a", a_on_left=True)
    bumped = (f"bumped AS (UPDATE {Comparison._meta.db_table} SET required_labels = required_labels + %s WHERE id = %s RETURNING required_labels)",
              [2, second.pk])
    if connection.vendor != "postgresql":
        with pytest.raises(ValueError, match="PostgreSQL's"):
            rows.insert_then_update(label, [(first, ["label_count"], "", [])], withs=[bumped])
        assert not PreferenceLabel.objects.exists()
        return
    first.label_count = 1
    with CaptureQueriesContext(connection) as queries:
        read = rows.insert_then_update(label, [(first, ["label_count"], "", [])], reads=[("SELECT required_labels FROM bumped", [])], withs=[bumped])
    assert len(queries) == 1 and read == [3]
    assert Comparison.objects.get(pk=second.pk).required_labels == 3 and Comparison.objects.get(pk=first.pk).label_count == 1
